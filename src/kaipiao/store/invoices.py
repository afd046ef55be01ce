"""Invoices: inserting, reading, listing, and compare-and-set status changes.

Every status change goes through `transition`, which checks the lifecycle table, updates the row
only if it is still in the expected status (so two writers cannot both win), and appends the
ledger event in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import Kind, Status, ensure_transition
from kaipiao.store import files, orders, pgraw, webhooks
from kaipiao.store.events import append_event
from kaipiao.store.records import COLUMNS, StoredInvoice
from kaipiao.store.tables import invoices

_INSERT = insert(invoices)
_DEFAULTS: dict[str, Any] = {
    "invoice_number": None, "issued_at": None, "remark": None, "callback_url": None,
    "lease_owner": None, "lease_expires_at": None, "lease_token": 0, "resend_after": None,
    "error_code": None,
    "error_message": None, "cancel_requested": False, "reverse_reason": None,
    "original_id": None, "attempts": 0, "next_attempt_at": None,
    "part": 1, "parts": 1, "order_ids": None, "reversible_total": None, "reversible": None,
}  # fmt: skip


_SQLITE_INSERT_NEW = sqlite_insert(invoices).on_conflict_do_nothing().returning(invoices.c.id)


def _prepare(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row as stored (Python values) and its statement parameters."""
    row = {**_DEFAULTS, **values}
    row["kind"] = Kind(row["kind"])
    row["status"] = Status(row["status"])
    params = dict(row)
    params["kind"] = row["kind"].value
    params["status"] = row["status"].value
    params["buyer"] = json.dumps(row["buyer"], ensure_ascii=False, sort_keys=True)
    params["lines"] = json.dumps(row["lines"], ensure_ascii=False)
    for name in ("order_ids", "reversible"):
        if row[name] is not None:
            params[name] = json.dumps(row[name], ensure_ascii=False)
    # A split order's key is on part 1 only; a merged invoice's orders are in order_claims.
    keyed = row["kind"] is Kind.BLUE and row["part"] == 1 and row["order_ids"] is None
    params["order_key"] = row["order_id"] if keyed else None
    return row, params


def insert_invoice(conn: Connection, values: dict[str, Any]) -> StoredInvoice:
    """Insert one invoice row (`buyer` and `lines` as Python objects) and return it as stored.

    One prebuilt statement for every row, so SQLAlchemy compiles it once."""
    row, params = _prepare(values)
    conn.execute(_INSERT, params)
    return StoredInvoice(**row)


_PG_INSERT_NEW = pgraw.json_insert(invoices, COLUMNS, "ON CONFLICT DO NOTHING RETURNING id")


def insert_new_invoices(conn: Connection, many: list[dict[str, Any]]) -> list[StoredInvoice | None]:
    """Insert several invoice rows in one statement, skipping any that would break a unique
    rule (the seller's order has its blue invoice already, or the serial is taken); each row
    comes back as stored, or None where it was skipped."""
    prepared = [_prepare(values) for values in many]
    if conn.dialect.name == "postgresql":
        rows = pgraw.rows_json([params for _, params in prepared])
        inserted = {row[0] for row in pgraw.fetch(conn, _PG_INSERT_NEW, rows)}
    else:
        params = [params for _, params in prepared]
        inserted = set(conn.execute(_SQLITE_INSERT_NEW, params).scalars())
    return [StoredInvoice(**row) if row["id"] in inserted else None for row, _ in prepared]


def get_invoice(
    conn: Connection, invoice_id: str, *, seller_id: str | None = None, lock: bool = False
) -> StoredInvoice | None:
    """The invoice, or None; with `seller_id`, another seller's invoice is None too."""
    query = select(invoices).where(invoices.c.id == invoice_id)
    if seller_id is not None:
        query = query.where(invoices.c.seller_id == seller_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (conn.execute(query)).first()
    return StoredInvoice.from_row(row) if row else None


def find_blue_by_order(conn: Connection, seller_id: str, order_id: str) -> StoredInvoice | None:
    query = select(invoices).where(
        invoices.c.seller_id == seller_id, invoices.c.order_key == order_id
    )
    row = (conn.execute(query)).first()
    return StoredInvoice.from_row(row) if row else None


def list_invoices(
    conn: Connection,
    seller_id: str,
    *,
    order_id: str | None = None,
    status: Status | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[StoredInvoice]:
    """Newest first; `before_id` continues after the last invoice of the previous page."""
    query = select(invoices).where(invoices.c.seller_id == seller_id)
    if order_id is not None:
        query = query.where(orders.order_filter(seller_id, order_id))
    if status is not None:
        query = query.where(invoices.c.status == status.value)
    if before_id is not None:
        query = query.where(invoices.c.id < before_id)
    rows = conn.execute(query.order_by(invoices.c.id.desc()).limit(limit))
    return [StoredInvoice.from_row(row) for row in rows]


def list_all(
    conn: Connection, *, status: Status | None, seller_id: str | None, limit: int
) -> list[StoredInvoice]:
    """Every seller's invoices (an operator's listing), newest first, optionally of one status
    or one seller."""
    query = select(invoices)
    if status is not None:
        query = query.where(invoices.c.status == status.value)
    if seller_id is not None:
        query = query.where(invoices.c.seller_id == seller_id)
    rows = conn.execute(query.order_by(invoices.c.id.desc()).limit(limit))
    return [StoredInvoice.from_row(row) for row in rows]


def changed_since(conn: Connection, seller_id: str, since: datetime) -> list[StoredInvoice]:
    """The seller's invoices last changed at or after `since`."""
    rows = conn.execute(
        select(invoices).where(invoices.c.seller_id == seller_id, invoices.c.updated_at >= since)
    )
    return [StoredInvoice.from_row(row) for row in rows]


def sellers_changed_since(conn: Connection, since: datetime) -> list[str]:
    """The sellers with an invoice changed at or after `since`."""
    rows = conn.execute(
        select(invoices.c.seller_id).where(invoices.c.updated_at >= since).distinct()
    )
    return [row[0] for row in rows]


def serial_known(conn: Connection, serial_no: str) -> bool:
    """Whether any invoice has this serial number."""
    found = conn.execute(select(invoices.c.id).where(invoices.c.serial_no == serial_no)).first()
    return found is not None


def transition(
    conn: Connection,
    invoice: StoredInvoice,
    target: Status,
    *,
    now: datetime,
    event: str,
    payload: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    lease_token: int | None = None,
) -> bool:
    """Move `invoice` to `target` if it is still in `invoice.status` (and, with `lease_token`,
    still leased under that token). Returns False, changing nothing, if another writer won."""
    ensure_transition(invoice.status, target)
    condition = [invoices.c.id == invoice.id, invoices.c.status == invoice.status.value]
    if lease_token is not None:
        condition.append(invoices.c.lease_token == lease_token)
    values = {"status": target.value, "updated_at": now, **(fields or {})}
    result = conn.execute(update(invoices).where(*condition).values(**values))
    if result.rowcount != 1:
        return False
    append_event(
        conn,
        invoice_id=invoice.id,
        seller_id=invoice.seller_id,
        type=event,
        payload={"from": invoice.status.value, "to": target.value, **(payload or {})},
        now=now,
    )
    changed = replace(invoice, status=target, updated_at=now, **(fields or {}))
    webhooks.enqueue(conn, changed, now)
    files.enqueue(conn, changed, now)  # reconciled or recovered issues get their files too
    return True


def mark(
    conn: Connection,
    invoice: StoredInvoice,
    *,
    now: datetime,
    event: str,
    fields: dict[str, Any],
    payload: dict[str, Any] | None = None,
) -> bool:
    """Change fields without a status change (e.g. cancel requested), guarded the same way."""
    result = conn.execute(
        update(invoices)
        .where(invoices.c.id == invoice.id, invoices.c.status == invoice.status.value)
        .values(updated_at=now, **fields)
    )
    if result.rowcount != 1:
        return False
    append_event(
        conn, invoice_id=invoice.id, seller_id=invoice.seller_id, type=event,
        payload=payload or {}, now=now,
    )  # fmt: skip
    return True
