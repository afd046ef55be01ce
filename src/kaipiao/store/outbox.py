"""Claiming due rows of an outbox table (webhook deliveries, invoice-file fetches, emails).

Each outbox row has a `next_attempt_at`; a sender claims the due ones oldest first and pushes
their `next_attempt_at` a lease ahead, in the same transaction, so no other sender (another
thread, another pod) takes them until the lease runs out. On PostgreSQL the rows are locked
`FOR UPDATE SKIP LOCKED` while they are claimed, so two senders claiming at once skip each
other's rows instead of waiting; SQLite's single writer serialises the claims by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Row, Select, Table, update
from sqlalchemy.engine import Connection


def lease_due(
    conn: Connection,
    due: Select[Any],
    table: Table,
    key: Column[Any],
    row_key: str,
    now: datetime,
    lease: timedelta,
) -> Sequence[Row[Any]]:
    """Run `due` (a query for the due rows of `table`, with their limit) and hold what it found
    for `lease`: the rows whose `key` column equals each found row's `row_key` attribute."""
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=table)
    rows = conn.execute(due).all()
    if rows:
        held = [getattr(r, row_key) for r in rows]
        conn.execute(update(table).where(key.in_(held)).values(next_attempt_at=now + lease))
    return rows
