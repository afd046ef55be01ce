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

from kaipiao.domain.codes import new_serial_no
from kaipiao.domain.invoice import InvoiceRequest, PricedInvoice, price_invoice
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.sellers import Seller
from kaipiao.services import ids
from kaipiao.services.errors import Conflict
from kaipiao.store import idempotency
from kaipiao.store import invoices as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.documents import render_invoice
from kaipiao.store.events import append_events
from kaipiao.store.records import StoredInvoice


@dataclass(frozen=True, slots=True)
class Accepted:
    """What intake did: `created` (a new invoice) or not (the order's existing invoice, or the
    replay of an earlier request under the same Idempotency-Key, created as that one was), the
    invoice's public document, and the stored invoice where it was read (None on a replay)."""

    created: bool
    document: dict[str, Any]
    invoice: StoredInvoice | None = None


def request_hash(canonical: bytes) -> str:
    """SHA-256 of a request in canonical form (`InvoiceCreate.canonical()`): equal for equal
    requests however they were formatted."""
    return hashlib.sha256(canonical).hexdigest()


def _line_json(priced: PricedInvoice) -> list[dict[str, Any]]:
    return [
        {
            "name": line.request.name,
            "tax_code": line.request.tax_code,
            "spec": line.request.spec,
            "unit": line.request.unit,
            "quantity": str(line.request.quantity),
            "unit_price": str(line.request.unit_price),
            "tax_rate": line.rate.code,
            "price_includes_tax": line.request.price_includes_tax,
            "amount": str(line.money.amount),
            "tax": str(line.money.tax),
        }
        for line in priced.lines
    ]


def new_row(seller: Seller, priced: PricedInvoice, digest: str, now: datetime) -> dict[str, Any]:
    """The `invoices` row of a newly accepted blue invoice (queued, due now)."""
    request = priced.request
    buyer = request.buyer
    return {
        "id": ids.invoice_id(now),
        "seller_id": seller.id,
        "order_id": request.order_id,
        "kind": Kind.BLUE,
        "region": seller.region,
        "original_id": None,
        "status": Status.QUEUED,
        "invoice_type": request.invoice_type.value,
        "serial_no": new_serial_no(now),
        "request_hash": digest,
        "buyer": {
            "name": buyer.name,
            "tax_id": buyer.tax_id,
            "address": buyer.address,
            "phone": buyer.phone,
            "bank": buyer.bank,
            "account": buyer.account,
            "email": buyer.email,
        },
        "lines": _line_json(priced),
        "remark": request.remark,
        "callback_url": request.callback_url,
        "total_amount": priced.totals.total_amount,
        "total_tax": priced.totals.total_tax,
        "total": priced.totals.total,
        "total_in_words": priced.total_in_words,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _complete_key(conn: Conn, seller_id: str, key: str | None, accepted: Accepted) -> None:
    if key is not None:
        idempotency.complete(
            conn, seller_id, key, created=accepted.created,
            body=json.dumps(accepted.document, ensure_ascii=False),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _New:
    """One accepted request waiting for its batch: the row to insert, its first event."""

    row: dict[str, Any]
    event: dict[str, Any]
    key: str | None
    seller_id: str


def _new_item(
    seller: Seller, priced: PricedInvoice, digest: str, key: str | None, now: datetime
) -> _New:
    row = new_row(seller, priced, digest, now)
    event = {
        "invoice_id": row["id"], "seller_id": seller.id, "type": "accepted", "created_at": now,
        "payload": {
            "order_id": row["order_id"], "serial_no": row["serial_no"], "request_hash": digest,
            "total": row["total"], "warnings": list(priced.warnings),
        },
    }  # fmt: skip
    return _New(row, event, key, seller.id)


def store_new(conn: Conn, items: list[_New]) -> list[Accepted | None]:
    """The batched unit of work that stores new invoices with their first events (one
    statement each for all of them) and completes their idempotency keys.

    It does not look for the orders first: a row whose order already has its invoice (perhaps
    committed a moment ago by a concurrent duplicate) is skipped by the unique rule and answered
    None, and the caller then runs `_find_existing`."""
    stored = repo.insert_new_invoices(conn, [item.row for item in items])
    append_events(
        conn,
        [item.event for item, invoice in zip(items, stored, strict=True) if invoice is not None],
        now=items[0].row["created_at"],
    )
    answers: list[Accepted | None] = []
    for item, invoice in zip(items, stored, strict=True):
        if invoice is None:
            answers.append(None)
            continue
        accepted = Accepted(True, render_invoice(invoice), invoice)
        _complete_key(conn, item.seller_id, item.key, accepted)
        answers.append(accepted)
    return answers


def _find_existing(
    seller: Seller, order_id: str, digest: str, key: str | None
) -> Callable[[Conn], Accepted | None]:
    def work(conn: Conn) -> Accepted | None:
        existing = repo.find_blue_by_order(conn, seller.id, order_id)
        if existing is None:
            return None
        if existing.request_hash != digest:
            raise Conflict(
                f"order {order_id!r} already has invoice {existing.id} with a different request",
                "order_conflict",
            )
        accepted = Accepted(False, render_invoice(existing), existing)
        _complete_key(conn, seller.id, key, accepted)
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
    find = _find_existing(seller, request.order_id, digest, key)
    try:
        for _ in range(3):
            stored = await db.write_batched(store_new, _new_item(seller, priced, digest, key, now))
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
