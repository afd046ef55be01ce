"""Accepting invoice requests: validate, price, and commit durably before answering.

An accepted invoice, its first ledger event and (with an Idempotency-Key) the stored answer are
written in one transaction: nothing is acknowledged that is not on disk, and nothing on disk lacks
its event. One blue invoice per seller and order: the same order with the same body returns the
existing invoice; with another body it is `order_conflict`.

The result is a domain answer, `Accepted`: whether this request created the invoice, and the
invoice's public document, rendered once (entry points send it as it is; the API answers 202 for
created, 200 for existing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kaipiao.domain.invoice import InvoiceRequest, PricedInvoice, price_invoice
from kaipiao.domain.sellers import Seller
from kaipiao.domain.split import PricedPart, split_invoice
from kaipiao.services import merged
from kaipiao.services.accepted import Accepted, complete_key
from kaipiao.services.errors import Conflict
from kaipiao.services.invoice_rows import accepted_event, part_row
from kaipiao.store import idempotency, orders
from kaipiao.store import invoices as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.documents import render_invoice
from kaipiao.store.events import append_events


def request_hash(canonical: bytes) -> str:
    """SHA-256 of a request in canonical form (`InvoiceCreate.canonical()`): equal for equal
    requests however they were formatted."""
    return hashlib.sha256(canonical).hexdigest()


def new_row(seller: Seller, priced: PricedInvoice, digest: str, now: datetime) -> dict[str, Any]:
    """The `invoices` row of a newly accepted blue invoice that fits on one invoice."""
    parts = split_invoice(priced, seller.policy())
    return part_row(seller, priced.request, parts[0], digest, now)


class SerialTaken(Exception):
    """A later part's serial collided with another invoice's: make the rows afresh."""


@dataclass(frozen=True, slots=True)
class _New:
    """One accepted request waiting for its batch: its rows (one per part, part 1 first) and
    their first events."""

    rows: list[dict[str, Any]]
    events: list[dict[str, Any]]
    key: str | None
    seller_id: str


def _new_item(
    seller: Seller, priced: PricedInvoice, parts: tuple[PricedPart, ...], digest: str,
    key: str | None, now: datetime,
) -> _New:  # fmt: skip
    rows = [part_row(seller, priced.request, part, digest, now) for part in parts]
    return _New(rows, [accepted_event(row, priced.warnings) for row in rows], key, seller.id)


def store_new(conn: Conn, items: list[_New]) -> list[Accepted | None]:
    """The batched unit of work that stores new invoices with their first events (one
    statement each for all of them) and completes their idempotency keys.

    It does not look for the orders first: a group whose order already has its invoice (perhaps
    committed a moment ago by a concurrent duplicate) is skipped by the unique rule on part 1
    and answered None, and the caller then runs `_find_existing`. Later parts are inserted only
    after their part 1. An order that a merged invoice has claimed fails its item
    (order_already_invoiced): the batch is then run again item by item, the others unharmed."""
    heads = repo.insert_new_invoices(conn, [item.rows[0] for item in items])
    fresh = [(item, head) for item, head in zip(items, heads, strict=True) if head is not None]
    taken = orders.claimed(conn, [(head.seller_id, head.order_id) for _, head in fresh])
    if taken:
        raise Conflict(
            f"order {sorted(taken)[0][1]!r} is on a merged invoice already",
            "order_already_invoiced",
        )
    tails = [row for item, _ in fresh for row in item.rows[1:]]
    if tails and any(stored is None for stored in repo.insert_new_invoices(conn, tails)):
        raise SerialTaken
    append_events(
        conn, [event for item, _ in fresh for event in item.events],
        now=items[0].rows[0]["created_at"],
    )  # fmt: skip
    answers: list[Accepted | None] = []
    for item, head in zip(items, heads, strict=True):
        if head is None:
            answers.append(None)
            continue
        accepted = Accepted(True, render_invoice(head), head)
        complete_key(conn, item.seller_id, item.key, accepted)
        answers.append(accepted)
    return answers


def _find_existing(
    seller: Seller, order_id: str, digest: str, key: str | None
) -> Callable[[Conn], Accepted | None]:
    def work(conn: Conn) -> Accepted | None:
        existing = repo.find_blue_by_order(conn, seller.id, order_id)
        if existing is None:
            if orders.find_merged(conn, seller.id, order_id) is not None:
                raise Conflict(
                    f"order {order_id!r} is on a merged invoice already", "order_already_invoiced"
                )
            return None
        if existing.request_hash != digest:
            raise Conflict(
                f"order {order_id!r} already has invoice {existing.id} with a different request",
                "order_conflict",
            )
        accepted = Accepted(False, render_invoice(existing), existing)
        complete_key(conn, seller.id, key, accepted)
        return accepted

    return work


async def submit_invoice(
    db: Database,
    seller: Seller,
    request: InvoiceRequest,
    canonical: bytes,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = timedelta(days=7),
) -> Accepted:
    """Accept a blue invoice request (created), or answer with the order's existing invoice.

    `canonical`: the request in canonical form (`InvoiceCreate.canonical()`), whose hash tells
    a repeated request from a different one. Raises DomainError for invalid requests, Conflict
    for order_conflict, idempotency_key_reused and request_in_progress.
    """
    priced = price_invoice(request, seller.policy())
    parts = split_invoice(priced, seller.policy())
    digest = request_hash(canonical)
    key = idempotency_key
    if key is not None:
        claim = await db.write(
            lambda conn: idempotency.claim(
                conn, seller.id, key, digest, now=now, ttl=idempotency_ttl
            )
        )
        if isinstance(claim, idempotency.Replay):
            return Accepted(claim.created, json.loads(claim.body))
        if isinstance(claim, idempotency.Reused):
            raise Conflict(
                "this Idempotency-Key was used with a different request", "idempotency_key_reused"
            )
        if isinstance(claim, idempotency.InProgress):
            raise Conflict(
                "a request with this Idempotency-Key is still being processed",
                "request_in_progress",
            )
    try:
        if request.order_ids:
            return await merged.submit_merged(db, seller, priced, parts, digest, key, now)
        find = _find_existing(seller, request.order_id, digest, key)
        for _ in range(3):
            try:
                stored = await db.write_batched(
                    store_new, _new_item(seller, priced, parts, digest, key, now)
                )
            except SerialTaken:
                continue
            if stored is not None:
                return stored
            # The order has its invoice already (perhaps committed a moment ago by a concurrent
            # duplicate): answer with it, or order_conflict if the bodies differ. None here means
            # the serial collided, which a fresh row settles.
            found = await db.write(find)
            if found is not None:
                return found
        raise Conflict("the order kept changing; retry", "request_in_progress")
    except BaseException:
        if key is not None:
            await db.write(lambda conn: idempotency.release(conn, seller.id, key))
        raise
