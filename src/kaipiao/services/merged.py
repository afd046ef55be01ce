"""Merged invoices (合并开票): one invoice for several orders of one buyer.

Each order id is claimed for the invoice (`store.orders`): listing by any of them finds it, and
an order already invoiced (alone, as a split order, or on another merged invoice) is refused
with `order_already_invoiced`. The same merged request again answers with its invoice, as a
repeated order does. A merged order over the seller's limits is split like any other; its parts
share the first order id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kaipiao.domain.invoice import PricedInvoice
from kaipiao.domain.sellers import Seller
from kaipiao.domain.split import PricedPart
from kaipiao.services.accepted import Accepted, complete_key
from kaipiao.services.errors import Conflict
from kaipiao.services.invoice_rows import accepted_event, part_row
from kaipiao.store import invoices as repo
from kaipiao.store import orders
from kaipiao.store.database import Conn, Database
from kaipiao.store.documents import render_invoice
from kaipiao.store.events import append_events


def _merge(
    seller: Seller, priced: PricedInvoice, parts: tuple[PricedPart, ...], digest: str,
    key: str | None, now: datetime,
) -> Callable[[Conn], Accepted]:  # fmt: skip
    order_ids = list(priced.request.order_ids)

    def work(conn: Conn) -> Accepted:
        orders.lock_for_merge(conn)
        taken = orders.invoiced_orders(conn, seller.id, order_ids)
        if taken:
            existing = orders.find_merged(conn, seller.id, order_ids[0])
            same = (
                existing is not None
                and existing.request_hash == digest
                and set(taken) == set(order_ids)
                and set(taken.values()) == {existing.id}
            )
            if existing is not None and same:
                accepted = Accepted(False, render_invoice(existing), existing)
                complete_key(conn, seller.id, key, accepted)
                return accepted
            listed = ", ".join(sorted(taken))
            raise Conflict(f"already invoiced: {listed}", "order_already_invoiced")
        rows = [part_row(seller, priced.request, part, digest, now) for part in parts]
        stored = [repo.insert_invoice(conn, row) for row in rows]
        orders.claim_orders(conn, seller.id, order_ids, stored[0].id)
        append_events(conn, [accepted_event(row, priced.warnings) for row in rows], now=now)
        accepted = Accepted(True, render_invoice(stored[0]), stored[0])
        complete_key(conn, seller.id, key, accepted)
        return accepted

    return work


async def submit_merged(
    db: Database, seller: Seller, priced: PricedInvoice, parts: tuple[PricedPart, ...],
    digest: str, key: str | None, now: datetime,
) -> Accepted:  # fmt: skip
    """Accept one invoice (or its split parts) for the orders `priced.request.order_ids`.

    Raises Conflict order_already_invoiced when any of them is invoiced by another request."""
    return await db.write(_merge(seller, priced, parts, digest, key, now))
