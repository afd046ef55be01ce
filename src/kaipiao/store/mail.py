"""Email delivery's records: a seller's SMTP sender (`seller_mail`), the outbox
(`mail_deliveries`) and the status shown on the invoice (`invoices.delivery`), kept together:
every change to a delivery writes both in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from kaipiao.store.documents import json_time
from kaipiao.store.outbox import lease_due
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import invoices, mail_deliveries, seller_mail


def set_sender(conn: Connection, seller_id: str, settings: dict[str, Any], now: datetime) -> None:
    conn.execute(delete(seller_mail).where(seller_mail.c.seller_id == seller_id))
    stored = json.dumps(settings, sort_keys=True)
    conn.execute(insert(seller_mail).values(seller_id=seller_id, settings=stored, updated_at=now))


def sender_of(conn: Connection, seller_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(seller_mail.c.settings).where(seller_mail.c.seller_id == seller_id)
    ).first()
    return json.loads(row.settings) if row else None


def _show(conn: Connection, invoice_id: str, shown: dict[str, Any]) -> None:
    conn.execute(update(invoices).where(invoices.c.id == invoice_id)
                 .values(delivery=json.dumps(shown, sort_keys=True)))  # fmt: skip


def enqueue(conn: Connection, invoice: StoredInvoice, now: datetime) -> bool:
    """Queue (or re-queue) sending `invoice`'s files to its buyer's email; False if the buyer
    has no address. Call it in the transaction that stores the files, or to re-send."""
    to = invoice.buyer.get("email")
    if not to:
        return False
    conn.execute(delete(mail_deliveries).where(mail_deliveries.c.invoice_id == invoice.id))
    conn.execute(insert(mail_deliveries).values(
        invoice_id=invoice.id, seller_id=invoice.seller_id, recipient=to, status="pending",
        attempts=0, next_attempt_at=now, created_at=now))  # fmt: skip
    _show(conn, invoice.id, {"status": "pending", "to": to, "attempts": 0})
    return True


@dataclass(frozen=True, slots=True)
class MailJob:
    invoice_id: str
    seller_id: str
    recipient: str
    attempts: int
    created_at: datetime


def claim_due(conn: Connection, now: datetime, limit: int, lease: timedelta) -> list[MailJob]:
    """Due emails, held for `lease` (pushed into the future) so no other sender takes them."""
    query = (
        select(mail_deliveries)
        .where(mail_deliveries.c.status == "pending", mail_deliveries.c.next_attempt_at <= now)
        .order_by(mail_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    key = mail_deliveries.c.invoice_id
    rows = lease_due(conn, query, mail_deliveries, key, "invoice_id", now, lease)
    return [MailJob(r.invoice_id, r.seller_id, r.recipient, r.attempts, r.created_at)
            for r in rows]  # fmt: skip


def record(
    conn: Connection, job: MailJob, *, now: datetime, sent: bool, error: str | None,
    next_attempt_at: datetime | None,
) -> None:  # fmt: skip
    """One attempt: sent, due again at `next_attempt_at`, or (None) failed for good."""
    status = "sent" if sent else ("pending" if next_attempt_at else "failed")
    attempts = job.attempts + 1
    conn.execute(
        update(mail_deliveries).where(mail_deliveries.c.invoice_id == job.invoice_id)
        .values(status=status, attempts=attempts, last_error=error,
                next_attempt_at=None if sent else next_attempt_at,
                sent_at=now if sent else None)
    )  # fmt: skip
    shown: dict[str, Any] = {"status": status, "to": job.recipient, "attempts": attempts}
    if sent:
        shown["sent_at"] = json_time(now)
    elif error:
        shown["reason"] = error
    if status == "pending":
        shown["next_attempt_at"] = json_time(next_attempt_at)
    _show(conn, job.invoice_id, shown)
