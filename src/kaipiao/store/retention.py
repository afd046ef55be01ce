"""What a purge reads and deletes: invoices by id in batches, with their webhook deliveries,
and expired idempotency keys. The ledger's events are never deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from kaipiao.store.tables import idempotency_keys, invoices, webhook_deliveries

BATCH = 500


def _batches(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def states(conn: Connection, ids: list[str]) -> list[tuple[str, str, datetime, datetime]]:
    """(id, status, updated_at, created_at) of the invoices among `ids` still in the store."""
    out: list[tuple[str, str, datetime, datetime]] = []
    for chunk in _batches(ids):
        rows = conn.execute(
            select(invoices.c.id, invoices.c.status, invoices.c.updated_at, invoices.c.created_at)
            .where(invoices.c.id.in_(chunk))
        )  # fmt: skip
        out += [(row.id, row.status, row.updated_at, row.created_at) for row in rows]
    return out


def reds_of(conn: Connection, ids: list[str]) -> list[tuple[str, str]]:
    """(original id, red id) for every red invoice whose original is among `ids`."""
    out: list[tuple[str, str]] = []
    for chunk in _batches(ids):
        rows = conn.execute(
            select(invoices.c.original_id, invoices.c.id).where(invoices.c.original_id.in_(chunk))
        )
        out += [(original, red) for original, red in rows]
    return out


def delete_invoices(conn: Connection, ids: list[str]) -> None:
    """Delete these invoices and their webhook deliveries; red ones first, since a red invoice
    references its original."""
    reds: list[str] = []
    for chunk in _batches(ids):
        reds += conn.execute(
            select(invoices.c.id).where(
                invoices.c.id.in_(chunk), invoices.c.original_id.is_not(None)
            )
        ).scalars()
    red_set = set(reds)
    for group in (reds, [i for i in ids if i not in red_set]):
        for chunk in _batches(group):
            conn.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.invoice_id.in_(chunk))
            )
            conn.execute(delete(invoices).where(invoices.c.id.in_(chunk)))


def delete_keys_expired_before(conn: Connection, cutoff: datetime) -> int:
    """Delete idempotency keys that expired before `cutoff`; how many went."""
    return int(
        conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.expires_at < cutoff)
        ).rowcount
    )
