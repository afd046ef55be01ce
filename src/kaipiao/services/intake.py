"""Accepting invoice requests: validate, price, and commit durably before answering.

An accepted invoice, its first ledger event and (with an Idempotency-Key) the stored response are
written in one transaction: nothing is acknowledged that is not on disk, and nothing on disk lacks
its event. One blue invoice per seller and order: the same order with the same body returns the
existing invoice; with another body it is `order_conflict`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from kaipiao.domain.codes import new_serial_no
from kaipiao.domain.invoice import InvoiceRequest, PricedInvoice, price_invoice
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.sellers import Seller
from kaipiao.services import ids
from kaipiao.services.errors import Conflict, NotFound
from kaipiao.store import idempotency
from kaipiao.store import invoices as repo
from kaipiao.store.database import Database
from kaipiao.store.events import append_events

Render = Callable[[repo.StoredInvoice], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Answer:
    """What to answer: an HTTP-ish status (202 accepted, 200 existing) and the JSON body."""

    status: int
    body: dict[str, Any]


def request_hash(canonical: bytes) -> str:
    """SHA-256 of a request in canonical form (the caller's parsed request serialised in its
    schema's field order): equal for equal requests however they were formatted."""
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


def _new_row(seller: Seller, priced: PricedInvoice, digest: str, now: datetime) -> dict[str, Any]:
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


def _existing_order(
    conn: Connection, seller: Seller, order_id: str, digest: str
) -> repo.StoredInvoice | None:
    existing = repo.find_blue_by_order(conn, seller.id, order_id)
    if existing is not None and existing.request_hash != digest:
        raise Conflict(
            f"order {order_id!r} already has invoice {existing.id} with a different request",
            "order_conflict",
        )
    return existing


def _complete_key(conn: Connection, seller: Seller, key: str | None, answer: Answer) -> None:
    if key is not None:
        idempotency.complete(
            conn, seller.id, key, status=answer.status,
            body=json.dumps(answer.body, ensure_ascii=False),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _New:
    """One accepted request waiting for its batch: the row to insert and what to answer."""

    row: dict[str, Any]
    event: dict[str, Any]
    key: str | None
    seller_id: str
    render: Render


def _new_item(
    seller: Seller, priced: PricedInvoice, digest: str, render: Render, key: str | None,
    now: datetime,
) -> _New:  # fmt: skip
    row = _new_row(seller, priced, digest, now)
    event = {
        "invoice_id": row["id"], "seller_id": seller.id, "type": "accepted", "created_at": now,
        "payload": {
            "order_id": row["order_id"], "serial_no": row["serial_no"], "request_hash": digest,
            "total": row["total"], "warnings": list(priced.warnings),
        },
    }  # fmt: skip
    return _New(row, event, key, seller.id, render)


def store_new(conn: Connection, items: list[_New]) -> list[Answer | None]:
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
    answers: list[Answer | None] = []
    for item, invoice in zip(items, stored, strict=True):
        if invoice is None:
            answers.append(None)
            continue
        answer = Answer(202, item.render(invoice))
        if item.key is not None:
            idempotency.complete(
                conn, item.seller_id, item.key, status=202,
                body=json.dumps(answer.body, ensure_ascii=False),
            )  # fmt: skip
        answers.append(answer)
    return answers


def _find_existing(
    seller: Seller, order_id: str, digest: str, render: Render, key: str | None
) -> Callable[[Connection], Answer | None]:
    def work(conn: Connection) -> Answer | None:
        existing = _existing_order(conn, seller, order_id, digest)
        if existing is None:
            return None
        answer = Answer(200, render(existing))
        _complete_key(conn, seller, key, answer)
        return answer

    return work


async def submit_invoice(
    db: Database,
    seller: Seller,
    request: InvoiceRequest,
    canonical: bytes,
    *,
    render: Render,
    now: datetime,
    idempotency_key: str | None = None,
    idempotency_ttl: timedelta = timedelta(days=7),
) -> Answer:
    """Accept a blue invoice request (202), or answer with the existing one (200).

    Raises DomainError for invalid requests, Conflict for order_conflict,
    idempotency_key_reused and request_in_progress.
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
            return Answer(claim.status, json.loads(claim.body))
        if isinstance(claim, idempotency.Reused):
            raise Conflict(
                "this Idempotency-Key was used with a different request", "idempotency_key_reused"
            )
        if isinstance(claim, idempotency.InProgress):
            raise Conflict(
                "a request with this Idempotency-Key is still being processed",
                "request_in_progress",
            )
    find = _find_existing(seller, request.order_id, digest, render, key)
    try:
        for _ in range(3):
            stored = await db.write_batched(
                store_new, _new_item(seller, priced, digest, render, key, now)
            )
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


async def get_invoice(db: Database, seller: Seller, invoice_id: str) -> repo.StoredInvoice:
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
) -> tuple[list[repo.StoredInvoice], str | None]:
    """A page, newest first, and the cursor of the next page (None on the last)."""
    page = await db.read(
        lambda conn: repo.list_invoices(
            conn, seller.id, order_id=order_id, status=status, before_id=cursor, limit=limit + 1
        )
    )
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].id if more and page else None)


def _cancel(
    seller: Seller, invoice_id: str, now: datetime
) -> Callable[[Connection], repo.StoredInvoice]:
    def work(conn: Connection) -> repo.StoredInvoice:
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
) -> repo.StoredInvoice:
    """Cancel before the platform has it. Returns the invoice (cancelled, or issuing with
    `cancel_requested`: a call may be in flight, so it will be reversed if it was issued).
    Raises NotFound, or Conflict already_issued / not_cancellable."""
    return await db.write(_cancel(seller, invoice_id, now))
