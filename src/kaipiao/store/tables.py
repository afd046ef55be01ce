"""The schema. `invoices` is also the work queue (status, next_attempt_at, lease columns).

Migrations in `migrations/versions` create exactly this; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from kaipiao.store.types import Money, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")

sellers = Table(
    "sellers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("tax_id", String(20), nullable=False, unique=True),
    Column("region", String(2), nullable=False),
    Column("quota_per_s", Float, nullable=True),
    Column("invoice_limit", Money, nullable=True),
    Column("tax_id_check", String(8), nullable=False, server_default="reject"),
    Column("allowed_networks", Text, nullable=False, server_default="[]"),
    Column("webhook_secret", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The most lines on one of this seller's invoices (NULL: the platform's 2000), and whether
    # `invoice_limit` is on the total including tax (else excluding it): an order over either
    # is split into several invoices (kaipiao.domain.split).
    Column("max_lines", Integer, nullable=True),
    Column("limit_includes_tax", Boolean, nullable=False, server_default="0"),
    # The secret before the last rotation: deliveries are signed with both until then.
    Column("webhook_secret_previous", String(64), nullable=True),
    Column("webhook_secret_previous_until", UtcDateTime, nullable=True),
)

# A seller's own provider account (absent: the deployment's default platform). `settings` is
# JSON; its secrets are `enc:` (encrypted with the deployment's secrets key) or `env:NAME`.
seller_platforms = Table(
    "seller_platforms",
    metadata,
    Column("seller_id", String(32), ForeignKey("sellers.id"), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("settings", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("seller_id", String(32), ForeignKey("sellers.id"), nullable=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("is_admin", Boolean, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),  # set on the old key by a rotation
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("seller_id", String(32), ForeignKey("sellers.id"), nullable=False),
    Column("order_id", String(64), nullable=False),
    # order_id for blue invoices, NULL for red ones: NULLs never collide, so the unique
    # constraint below holds "one blue invoice per seller and order" on both databases.
    Column("order_key", String(64), nullable=True),
    Column("kind", String(8), nullable=False),
    # The seller's province at intake: workers skip regions whose circuit breaker is open.
    Column("region", String(2), nullable=False, server_default="31"),
    Column("original_id", String(32), ForeignKey("invoices.id"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("invoice_type", String(16), nullable=False),
    Column("serial_no", String(20), nullable=False, unique=True),
    Column("invoice_number", String(20), nullable=True),
    Column("issued_at", UtcDateTime, nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("buyer", Text, nullable=False),
    Column("lines", Text, nullable=False),
    Column("remark", Text, nullable=True),
    Column("callback_url", Text, nullable=True),
    Column("total_amount", Money, nullable=False),
    Column("total_tax", Money, nullable=False),
    Column("total", Money, nullable=False),
    Column("total_in_words", String(64), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("lease_token", Integer, nullable=False, server_default="0"),
    # The earliest time a "not found" from the platform proves that no earlier attempt will still
    # be issued: the last moment an attempt could have been sent, plus the platform's settle time.
    Column("resend_after", UtcDateTime, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default="0"),
    Column("reverse_reason", String(32), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # A split order's invoices are parts 1..n of n; part 1 holds the order's key (order_key),
    # the others have none, so the unique rule still holds "one group per order".
    Column("part", Integer, nullable=False, server_default="1"),
    Column("parts", Integer, nullable=False, server_default="1"),
    # A merged invoice (合并开票): the JSON list of its orders, each claimed in `order_claims`.
    Column("order_ids", Text, nullable=True),
    # A blue invoice's total (including tax) not yet reversed or being reversed, and what is left
    # of each goods line (JSON; NULL: nothing reversed yet, all of every line). Changed only
    # under the row's lock with a compare-and-set on `reversible_total` (store.invoices).
    Column("reversible_total", Money, nullable=True),
    Column("reversible", Text, nullable=True),
    # The invoice's stored files (JSON: kind → sha3_256, size, stored_at), once fetched
    # (kaipiao.engine.files); their hashes are also in a `files_stored` ledger event.
    Column("files", Text, nullable=True),
    # Delivery of the files to the buyer by email (JSON: status pending|sent|failed, to, reason,
    # attempts, sent_at), kept beside the outbox row `mail_deliveries` (kaipiao.engine.mail).
    Column("delivery", Text, nullable=True),
    UniqueConstraint("seller_id", "order_key"),
    Index("ix_invoices_due", "status", "next_attempt_at"),
    Index("ix_invoices_seller_listing", "seller_id", "id"),
    # The console's search (docs/console.md): by order, number, status, issue time, each a
    # range of an index that ends in the id, so a cursor page reads only its own rows.
    Index("ix_invoices_order_id", "order_id", "id"),
    Index("ix_invoices_number", "invoice_number"),
    Index("ix_invoices_status_listing", "status", "id"),
    Index("ix_invoices_issued_at", "issued_at"),
)

# The orders of merged invoices: each order id of a seller belongs to at most one of them.
# Blue invoices of one order keep their key in `invoices.order_key`; intake checks both.
order_claims = Table(
    "order_claims",
    metadata,
    Column("seller_id", String(32), ForeignKey("sellers.id"), primary_key=True),
    Column("order_id", String(64), primary_key=True),
    Column("invoice_id", String(32), ForeignKey("invoices.id"), nullable=False, index=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("seller_id", String(32), ForeignKey("sellers.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(12), nullable=False),  # in_progress | done
    Column("locked_until", UtcDateTime, nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)

# One row per state change, written in the same transaction as the change. `seq`, `prev_hash`
# and `hash` belong to the tamper-evident chain (kaipiao.ledger).
ledger_events = Table(
    "ledger_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("invoice_id", String(32), nullable=True, index=True),
    Column("seller_id", String(32), nullable=True),
    Column("type", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("seq", BigInteger, nullable=True, unique=True),
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
)

# The chain's head: one row, locked by every transaction that appends events, so that sequence
# numbers have no gaps and the chain no forks however many processes write.
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Signed Merkle tree heads over the first `size` events.
ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("time", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
    # The Merkle tree's right edge at this size (JSON), so the next checkpoint hashes only the
    # events after it. Not trusted by verification, which recomputes every root.
    Column("frontier", Text, nullable=True),
)

# Per-seller platform quota as a token bucket shared by every worker process.
seller_quota = Table(
    "seller_quota",
    metadata,
    Column("seller_id", String(32), ForeignKey("sellers.id"), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Each worker process's last report of itself (breakers, limits, calls in flight), so that
# `kaipiao status` and the metrics can show every worker's view, not only their own process's.
worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("owner", String(128), primary_key=True),
    Column("seen_at", UtcDateTime, nullable=False),
    Column("state", Text, nullable=False),
)

# The webhook outbox: one row per terminal change of an invoice with a callback URL, written in
# the transaction that makes the change, delivered (and retried) by `kaipiao.engine.webhooks`.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("invoice_id", String(32), nullable=False, index=True),
    Column("seller_id", String(32), nullable=False),
    Column("type", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(12), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

# The file-fetch outbox: one row per issued invoice, written in the transaction that records the
# issue, worked (and retried with backoff) by `kaipiao.engine.files`, apart from issuance.
file_jobs = Table(
    "file_jobs",
    metadata,
    Column("invoice_id", String(32), primary_key=True),
    Column("seller_id", String(32), nullable=False),
    Column("status", String(12), nullable=False),  # pending, done, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("done_at", UtcDateTime, nullable=True),
    Index("ix_file_jobs_due", "status", "next_attempt_at"),
)

# A seller's SMTP sender (JSON: host, port, security, username, sealed password, sender).
seller_mail = Table(
    "seller_mail",
    metadata,
    Column("seller_id", String(32), ForeignKey("sellers.id"), primary_key=True),
    Column("settings", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The email outbox: one row per invoice whose files go to the buyer's address.
mail_deliveries = Table(
    "mail_deliveries",
    metadata,
    Column("invoice_id", String(32), primary_key=True),
    Column("seller_id", String(32), nullable=False),
    Column("recipient", Text, nullable=False),
    Column("status", String(12), nullable=False),  # pending, sent, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Index("ix_mail_deliveries_due", "status", "next_attempt_at"),
)

# One row per reconciliation run: what was compared and what disagreed.
reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("checked", Integer, nullable=False),
    Column("settled", Integer, nullable=False),
    Column("contradictions", Integer, nullable=False),
    Column("unreachable", Integer, nullable=False),
)

# The console's principals (not seller API keys): a name, a role, and a password hashed with
# argon2id or a one-time sign-in token (hashed the same way), consumed by the first sign-in.
operators = Table(
    "operators",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # viewer | operator | admin
    Column("password_hash", Text, nullable=True),
    Column("token_hash", Text, nullable=True),
    Column("token_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
)

# Signed-in console sessions, by the SHA-256 of the cookie's value (the value itself is never
# stored); `csrf` is the token every form of the session carries.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("operator_id", String(32), ForeignKey("operators.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False, index=True),
)
