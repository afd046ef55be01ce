"""The invoice files' records: the fetch outbox (`file_jobs`), the invoice's `files` column and
the `files_stored` ledger event that makes each file's SHA3-256 tamper-evident.

The outbox row is written in the transaction that records the issue (`queue.settle`), so no
issued invoice is forgotten; fetching happens later, apart (`kaipiao.engine.files`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import Status
from kaipiao.store import mail, webhooks
from kaipiao.store.documents import json_time
from kaipiao.store.events import append_event
from kaipiao.store.outbox import lease_due
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import file_jobs, invoices, ledger_events, sellers

EVENT = "files_stored"


def enqueue(conn: Connection, invoice: StoredInvoice, now: datetime) -> None:
    """Queue the fetch of an invoice's files once it is issued (call it in that transaction)."""
    if invoice.status is not Status.ISSUED or not invoice.invoice_number:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        insert(file_jobs).values(
            invoice_id=invoice.id, seller_id=invoice.seller_id, status="pending", attempts=0,
            next_attempt_at=now, created_at=now,
        ).on_conflict_do_nothing()
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class FileJob:
    invoice: StoredInvoice
    seller_tax_id: str
    attempts: int
    created_at: datetime


def claim_due(conn: Connection, now: datetime, limit: int, lease: timedelta) -> list[FileJob]:
    """Due fetches, held for `lease` (pushed into the future) so no other fetcher takes them."""
    query = (
        select(
            file_jobs.c.attempts.label("job_attempts"),
            file_jobs.c.created_at.label("job_created"),
            sellers.c.tax_id.label("seller_tax_id"),
            invoices,
        )
        .join(invoices, invoices.c.id == file_jobs.c.invoice_id)
        .join(sellers, sellers.c.id == file_jobs.c.seller_id)
        .where(file_jobs.c.status == "pending", file_jobs.c.next_attempt_at <= now)
        .order_by(file_jobs.c.next_attempt_at)
        .limit(limit)
    )
    rows = lease_due(conn, query, file_jobs, file_jobs.c.invoice_id, "id", now, lease)
    return [FileJob(StoredInvoice.from_row(r[3:]), r.seller_tax_id, r.job_attempts, r.job_created)
            for r in rows]  # fmt: skip


def record_stored(
    conn: Connection, invoice: StoredInvoice, hashes: dict[str, tuple[str, int]], now: datetime
) -> StoredInvoice:
    """The files are in the file store: list them on the invoice, close the job, append the
    `files_stored` event with each file's SHA3-256 and size, queue their email to the buyer
    (if it has an address), and announce them by webhook."""
    listed = {kind: {"sha3_256": digest, "size": size, "stored_at": json_time(now)}
              for kind, (digest, size) in sorted(hashes.items())}  # fmt: skip
    conn.execute(
        update(invoices).where(invoices.c.id == invoice.id)
        .values(files=json.dumps(listed, sort_keys=True))
    )  # fmt: skip
    conn.execute(
        update(file_jobs).where(file_jobs.c.invoice_id == invoice.id)
        .values(status="done", attempts=file_jobs.c.attempts + 1, done_at=now,
                next_attempt_at=None, last_error=None)
    )  # fmt: skip
    payload = {kind: {"sha3_256": digest, "size": size}
               for kind, (digest, size) in sorted(hashes.items())}  # fmt: skip
    append_event(conn, invoice_id=invoice.id, seller_id=invoice.seller_id, type=EVENT,
                 payload=payload, now=now)  # fmt: skip
    stored = replace(invoice, files=listed)
    if mail.enqueue(conn, stored, now):
        stored = replace(stored, delivery={"status": "pending", "to": stored.buyer["email"],
                                           "attempts": 0})  # fmt: skip
    webhooks.announce(conn, stored, "invoice.files_ready", now)
    return stored


def record_failure(
    conn: Connection, invoice_id: str, *, error: str, next_attempt_at: datetime | None
) -> None:
    """A failed fetch: due again at `next_attempt_at`, or (None) given up for good."""
    conn.execute(
        update(file_jobs).where(file_jobs.c.invoice_id == invoice_id)
        .values(status="pending" if next_attempt_at else "failed",
                attempts=file_jobs.c.attempts + 1, last_error=error[:500],
                next_attempt_at=next_attempt_at)
    )  # fmt: skip


def job_of(conn: Connection, invoice_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(file_jobs).where(file_jobs.c.invoice_id == invoice_id)).first()
    if row is None:
        return None
    return {"status": row.status, "attempts": row.attempts, "last_error": row.last_error,
            "next_attempt_at": json_time(row.next_attempt_at)}  # fmt: skip


def backlog(conn: Connection) -> int:
    return int(conn.execute(
        select(func.count()).where(file_jobs.c.status == "pending")
    ).scalar_one())  # fmt: skip


def recorded_hashes(
    conn: Connection, after_id: int = 0, limit: int = 1000
) -> list[tuple[int, str, str, dict[str, Any]]]:
    """One page of `files_stored` events after event id `after_id`: (event id, invoice id,
    seller id, {kind: {sha3_256, size}}), the ledger's word on each stored file."""
    rows = conn.execute(
        select(ledger_events.c.id, ledger_events.c.invoice_id, ledger_events.c.seller_id,
               ledger_events.c.payload)
        .where(ledger_events.c.type == EVENT, ledger_events.c.id > after_id)
        .order_by(ledger_events.c.id)
        .limit(limit)
    ).all()  # fmt: skip
    return [(r.id, r.invoice_id, r.seller_id, json.loads(r.payload)) for r in rows]
