"""Helpers for engine tests: accept invoices through the real intake service, run workers."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from kaipiao.clock import utcnow
from kaipiao.domain.sellers import Seller
from kaipiao.engine.breaker import BreakerConfig
from kaipiao.engine.retry import RetryPolicy
from kaipiao.engine.worker import WorkerConfig
from kaipiao.services import intake
from kaipiao.services.invoice_request import InvoiceCreate
from kaipiao.store.database import Database
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import invoices, ledger_events
from tests.factories import invoice_body

FAST = WorkerConfig(
    lease_s=5.0,
    renew_every_s=1.0,
    idle_poll_s=0.05,
    shutdown_grace_s=5.0,
    settle_s=0.0,  # the in-memory platform acts at once: nothing can land late
    policy=RetryPolicy(base_s=0.02, cap_s=0.2, poll_base_s=0.05, poll_cap_s=0.3, max_attempts=8),
    breaker=BreakerConfig(open_for_s=0.5, minimum_calls=20),
)


async def accept(db: Database, seller: Seller, count: int, prefix: str = "E") -> list[str]:
    ids = []
    for i in range(count):
        body = InvoiceCreate.model_validate(invoice_body(f"{prefix}-{i}"))
        accepted = await intake.submit_invoice(
            db, seller, body.to_domain(), body.canonical(), now=utcnow()
        )
        ids.append(accepted.document["id"])
    return ids


async def all_invoices(db: Database) -> list[StoredInvoice]:
    rows = await db.read(lambda conn: conn.execute(select(invoices).order_by(invoices.c.id)).all())
    return [StoredInvoice.from_row(row) for row in rows]


async def events_of(db: Database, invoice_id: str) -> list[str]:
    rows = await db.read(
        lambda conn: conn.execute(
            select(ledger_events.c.type)
            .where(ledger_events.c.invoice_id == invoice_id)
            .order_by(ledger_events.c.id)
        ).all()
    )
    return [row.type for row in rows]


async def make_due(db: Database) -> None:
    """Bring every scheduled retry or poll forward to now (tests do not wait for backoff)."""
    past = utcnow() - timedelta(seconds=1)
    await db.write(
        lambda conn: conn.execute(
            invoices.update()
            .where(invoices.c.next_attempt_at.is_not(None))
            .values(next_attempt_at=past)
        )
    )


def statuses(items: list[StoredInvoice]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item.status.value] = out.get(item.status.value, 0) + 1
    return out
