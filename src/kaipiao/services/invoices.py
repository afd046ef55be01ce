"""A seller's view of its invoices: one, a page of them, and one's webhook deliveries.

Another seller's invoice is not found, never forbidden: its existence is not revealed.
"""

from __future__ import annotations

from typing import Any

from kaipiao.domain.lifecycle import Status
from kaipiao.domain.sellers import Seller
from kaipiao.services import ids
from kaipiao.services.errors import NotFound, ServiceError
from kaipiao.store import invoices as repo
from kaipiao.store import webhooks
from kaipiao.store.database import Conn, Database
from kaipiao.store.records import StoredInvoice


async def get_invoice(db: Database, seller: Seller, invoice_id: str) -> StoredInvoice:
    """The seller's invoice; NotFound if there is none of that id (or it is another's)."""
    invoice = await db.read(lambda conn: repo.get_invoice(conn, invoice_id, seller_id=seller.id))
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    return invoice


async def list_invoices(
    db: Database,
    seller: Seller,
    *,
    order_id: str | None,
    status: Status | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[StoredInvoice], str | None]:
    """A page, newest first, and the cursor of the next page (None on the last). A cursor is
    the id of the last invoice of the previous page; anything else is `invalid_cursor`."""
    if cursor is not None and not ids.is_invoice_id(cursor):
        raise ServiceError(
            "cursor must be the next_cursor of a previous page (an invoice id)", "invalid_cursor"
        )
    page = await db.read(
        lambda conn: repo.list_invoices(
            conn, seller.id, order_id=order_id, status=status, before_id=cursor, limit=limit + 1
        )
    )
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].id if more and page else None)


async def webhook_deliveries(db: Database, seller: Seller, invoice_id: str) -> list[dict[str, Any]]:
    """The webhook deliveries of the seller's invoice, oldest first, each with its state and
    last answer; NotFound as `get_invoice`."""

    def work(conn: Conn) -> list[dict[str, Any]] | None:
        if repo.get_invoice(conn, invoice_id, seller_id=seller.id) is None:
            return None
        return webhooks.for_invoice(conn, invoice_id)

    deliveries = await db.read(work)
    if deliveries is None:
        raise NotFound(f"no invoice {invoice_id}")
    return deliveries
