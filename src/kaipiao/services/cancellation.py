"""Cancelling an invoice before the platform has it.

A queued invoice is cancelled at once. One being issued (or in attention) may have a call in
flight, so it is only marked `cancel_requested`: if the platform issues it after all, the worker
reverses it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kaipiao.domain.lifecycle import Status
from kaipiao.domain.sellers import Seller
from kaipiao.services.errors import Conflict, NotFound
from kaipiao.store import invoices as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.records import StoredInvoice


def cancel_work(seller: Seller, invoice_id: str, now: datetime) -> Callable[[Conn], StoredInvoice]:
    def work(conn: Conn) -> StoredInvoice:
        invoice = repo.get_invoice(conn, invoice_id, seller_id=seller.id, lock=True)
        if invoice is None:
            raise NotFound(f"no invoice {invoice_id}")
        if invoice.status is Status.CANCELLED:
            return invoice
        if invoice.status is Status.QUEUED:
            done = repo.transition(
                conn, invoice, Status.CANCELLED, now=now, event="cancelled",
                fields={"lease_owner": None, "lease_expires_at": None, "next_attempt_at": None},
            )  # fmt: skip
            if not done:
                raise Conflict("the invoice changed meanwhile; try again", "request_in_progress")
        elif invoice.status in (Status.ISSUING, Status.ATTENTION):
            if not invoice.cancel_requested:
                repo.mark(
                    conn, invoice, now=now, event="cancel_requested",
                    fields={"cancel_requested": True},
                )  # fmt: skip
        elif invoice.status in (Status.ISSUED, Status.REVERSING, Status.REVERSED):
            raise Conflict(
                f"invoice {invoice.invoice_number} is issued; reverse it instead", "already_issued"
            )
        else:
            raise Conflict(f"a {invoice.status} invoice cannot be cancelled", "not_cancellable")
        updated = repo.get_invoice(conn, invoice_id)
        assert updated is not None
        return updated

    return work


async def cancel_invoice(
    db: Database, seller: Seller, invoice_id: str, *, now: datetime
) -> StoredInvoice:
    """Cancel before the platform has it. Returns the invoice (cancelled, or issuing with
    `cancel_requested`: a call may be in flight, so it will be reversed if it was issued).
    Raises NotFound, or Conflict already_issued / not_cancellable."""
    return await db.write(cancel_work(seller, invoice_id, now))
