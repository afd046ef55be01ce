"""Ledger events: one row per state change, appended in the transaction that makes the change.

The payload is canonical JSON (sorted keys, no spaces, UTF-8) so that its bytes, and later its
hash, are the same whoever writes or reads it.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from kaipiao.store.tables import ledger_events


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in a ledger payload")


_INSERT = insert(ledger_events)


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def append_event(
    conn: Connection,
    *,
    invoice_id: str | None,
    seller_id: str | None,
    type: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """Append one event; call it inside the transaction that makes the change it records."""
    conn.execute(
        _INSERT,
        {
            "invoice_id": invoice_id,
            "seller_id": seller_id,
            "type": type,
            "payload": canonical_json(payload),
            "created_at": now,
        },
    )


def events_for(conn: Connection, invoice_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(ledger_events)
        .where(ledger_events.c.invoice_id == invoice_id)
        .order_by(ledger_events.c.id)
    )
    return [dict(row._mapping) for row in rows]


def append_events(conn: Connection, events: list[dict[str, Any]], *, now: datetime) -> None:
    """Append several events in one statement (`invoice_id`, `seller_id`, `type`, `payload`, and
    optionally their own `created_at`, else `now`)."""
    if not events:
        return
    conn.execute(
        _INSERT,
        [
            {
                "invoice_id": e["invoice_id"],
                "seller_id": e["seller_id"],
                "type": e["type"],
                "payload": canonical_json(e["payload"]),
                "created_at": e.get("created_at", now),
            }
            for e in events
        ],
    )
