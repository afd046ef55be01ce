"""Operator actions on invoices (the `kaipiao invoices` command)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kaipiao.domain.lifecycle import Status
from kaipiao.services.errors import Conflict, NotFound
from kaipiao.store import invoices as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.events import events_for
from kaipiao.store.records import StoredInvoice


async def list_all(
    db: Database, *, status: Status | None, seller_id: str | None, limit: int
) -> list[StoredInvoice]:
    """Invoices of every seller, newest first (optionally one status or one seller)."""
    return await db.read(
        lambda conn: repo.list_all(conn, status=status, seller_id=seller_id, limit=limit)
    )


async def show(db: Database, invoice_id: str) -> tuple[StoredInvoice, list[dict[str, object]]]:
    def work(conn: Conn) -> tuple[StoredInvoice, list[dict[str, object]]]:
        invoice = repo.get_invoice(conn, invoice_id)
        if invoice is None:
            raise NotFound(f"no invoice {invoice_id}")
        return invoice, events_for(conn, invoice_id)

    return await db.read(work)


def requeue_work(invoice_id: str, now: datetime) -> Callable[[Conn], StoredInvoice]:
    """The unit of work of `requeue` (the console runs it under the operator's name)."""

    def work(conn: Conn) -> StoredInvoice:
        invoice = repo.get_invoice(conn, invoice_id, lock=True)
        if invoice is None:
            raise NotFound(f"no invoice {invoice_id}")
        if invoice.status is not Status.ATTENTION:
            raise Conflict(f"only attention invoices are requeued; this one is {invoice.status}",
                           "not_in_attention")  # fmt: skip
        repo.transition(
            conn, invoice, Status.ISSUING, now=now, event="requeued",
            fields={"attempts": 1, "next_attempt_at": now, "lease_owner": None,
                    "lease_expires_at": None, "error_code": None, "error_message": None},
        )  # fmt: skip
        updated = repo.get_invoice(conn, invoice_id)
        assert updated is not None
        return updated

    return work


async def requeue(db: Database, invoice_id: str, *, now: datetime) -> StoredInvoice:
    """Give an `attention` invoice a fresh set of attempts. It goes to `issuing`, so the next
    worker asks the platform about its serial before sending anything."""
    return await db.write(requeue_work(invoice_id, now))
