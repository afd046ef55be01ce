"""What an archive copies out of the store: finished invoices page by page, and their events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import TERMINAL
from kaipiao.store.tables import invoices, ledger_events


def finished_page(
    conn: Connection, *, before: datetime, after_id: str, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` finished invoices accepted before `before` whose ids follow `after_id`, in
    id order, each row with every column as stored."""
    rows = conn.execute(
        select(invoices)
        .where(
            invoices.c.created_at < before,
            invoices.c.status.in_([s.value for s in TERMINAL]),
            invoices.c.id > after_id,
        )
        .order_by(invoices.c.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]


def events_of(conn: Connection, invoice_ids: list[str]) -> list[dict[str, Any]]:
    """Every ledger event of these invoices, in chain order, each with every column."""
    query = select(ledger_events).where(ledger_events.c.invoice_id.in_(invoice_ids))
    return [dict(r._mapping) for r in conn.execute(query.order_by(ledger_events.c.seq))]
