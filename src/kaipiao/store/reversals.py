"""What stays reversible of a blue invoice: its `reversible_total` and per-line `reversible`.

Reversals reserve what they take when they are requested, not when the platform issues them, so
two requests in flight can never together take more than the original had. The change is a
compare-and-set on `reversible_total` (and the status), made under the original's row lock
(`get_invoice(lock=True)`, FOR UPDATE on PostgreSQL; SQLite's writer runs one unit at a time):
a second reversal waits for the first to commit, then reads what the first left.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.store.events import append_event
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import invoices

CENT = Decimal("0.01")
LIVE = (Status.QUEUED.value, Status.ISSUING.value, Status.ATTENTION.value)


def money(value: Decimal) -> Decimal:
    """A reversible total as stored: 2 places, never −0.00 (SQLite compares the text)."""
    value = value.quantize(CENT)
    return Decimal("0.00") if value == 0 else value


def reversible_total(invoice: StoredInvoice) -> Decimal:
    """What is left to reverse (rows from before migration 0008 may lack it: all of it)."""
    return invoice.reversible_total if invoice.reversible_total is not None else invoice.total


def set_reversible(
    conn: Connection,
    invoice: StoredInvoice,
    *,
    total: Decimal,
    items: list[dict[str, Any]],
    now: datetime,
    event: str,
    payload: dict[str, Any],
) -> bool:
    """Set what is left to reverse of `invoice` if it still has `invoice`'s status and left-over
    total (compare-and-set), with a ledger event. False, changing nothing, if another writer
    changed either first."""
    condition = [invoices.c.id == invoice.id, invoices.c.status == invoice.status.value]
    if invoice.reversible_total is None:
        condition.append(invoices.c.reversible_total.is_(None))
    else:
        condition.append(invoices.c.reversible_total == money(invoice.reversible_total))
    result = conn.execute(
        update(invoices)
        .where(*condition)
        .values(reversible_total=money(total), reversible=json.dumps(items), updated_at=now)
    )
    if result.rowcount != 1:
        return False
    append_event(
        conn, invoice_id=invoice.id, seller_id=invoice.seller_id, type=event,
        payload={"reversible_total": money(total), **payload}, now=now,
    )  # fmt: skip
    return True


def live_reds(conn: Connection, original_id: str) -> int:
    """Red invoices against `original_id` not yet issued or refused."""
    return int(
        conn.execute(
            select(func.count()).where(
                invoices.c.original_id == original_id,
                invoices.c.kind == Kind.RED.value,
                invoices.c.status.in_(LIVE),
            )
        ).scalar_one()
    )
