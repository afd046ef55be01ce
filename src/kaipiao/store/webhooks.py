"""The webhook outbox: written with the change it announces, read and updated by the sender."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import TERMINAL
from kaipiao.store.documents import json_time, render_invoice
from kaipiao.store.outbox import lease_due
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import sellers, webhook_deliveries


def enqueue(conn: Connection, invoice: StoredInvoice, now: datetime) -> None:
    """Queue the announcement of `invoice`'s new status, if terminal and it has a callback URL.
    Call it in the transaction that makes the change."""
    if invoice.callback_url is None or invoice.status not in TERMINAL:
        return
    announce(conn, invoice, f"invoice.{invoice.status.value}", now)


def announce(conn: Connection, invoice: StoredInvoice, kind: str, now: datetime) -> None:
    """Queue an event `kind` about `invoice` (with its document) if it has a callback URL."""
    if invoice.callback_url is None:
        return
    event_id = "evt_" + uuid.uuid4().hex
    body = {
        "event_id": event_id, "type": kind, "created_at": json_time(now),
        "invoice": render_invoice(invoice),
    }  # fmt: skip
    conn.execute(
        webhook_deliveries.insert().values(
            event_id=event_id, invoice_id=invoice.id, seller_id=invoice.seller_id, type=kind,
            url=invoice.callback_url, body=json.dumps(body, ensure_ascii=False, sort_keys=True),
            status="pending", attempts=0, next_attempt_at=now, created_at=now,
        )
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: str
    url: str
    body: str
    attempts: int
    created_at: datetime
    secrets: tuple[str, ...]  # the seller's secret, then the previous one during a rotation


def claim_due(conn: Connection, now: datetime, limit: int, lease: timedelta) -> list[Delivery]:
    """Due deliveries, held for `lease` (pushed into the future) so no other sender takes them."""
    query = (
        select(
            webhook_deliveries,
            sellers.c.webhook_secret,
            sellers.c.webhook_secret_previous,
            sellers.c.webhook_secret_previous_until,
        )
        .join(sellers, sellers.c.id == webhook_deliveries.c.seller_id)
        .where(
            webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now
        )
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    rows = lease_due(conn, query, webhook_deliveries, webhook_deliveries.c.id, "id", now, lease)
    return [
        Delivery(r.id, r.event_id, r.url, r.body, r.attempts, r.created_at, _secrets(r, now))
        for r in rows
    ]


def _secrets(row: Any, now: datetime) -> tuple[str, ...]:
    until = row.webhook_secret_previous_until
    if row.webhook_secret_previous and until is not None and until > now:
        return (row.webhook_secret, row.webhook_secret_previous)
    return (row.webhook_secret,)


def record(
    conn: Connection,
    delivery_id: int,
    *,
    now: datetime,
    delivered: bool,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
) -> None:
    """One attempt's result: delivered, due again at `next_attempt_at`, or (None) given up."""
    state = "delivered" if delivered else ("pending" if next_attempt_at else "failed")
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=state, attempts=webhook_deliveries.c.attempts + 1, last_status=status_code,
            last_error=error, next_attempt_at=None if delivered else next_attempt_at,
            delivered_at=now if delivered else None,
        )
    )  # fmt: skip


def backlog(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count()).where(webhook_deliveries.c.status == "pending")
        ).scalar_one()
    )


def for_invoice(conn: Connection, invoice_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(webhook_deliveries)
        .where(webhook_deliveries.c.invoice_id == invoice_id)
        .order_by(webhook_deliveries.c.id)
    )
    return [
        {
            "event_id": r.event_id,
            "type": r.type,
            "url": r.url,
            "status": r.status,
            "attempts": r.attempts,
            "last_status": r.last_status,
            "last_error": r.last_error,
            "next_attempt_at": json_time(r.next_attempt_at),
            "delivered_at": json_time(r.delivered_at),
        }
        for r in rows
    ]
