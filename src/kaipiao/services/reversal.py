"""Red-letter (红字) reversal: a red invoice against an issued blue one.

数电 invoices cannot be voided, only reversed. The red invoice is an invoice of its own (kind red,
`original_id`), issued by the engine like any other; the original goes `issued → reversing`, and
`reversed` once the red one is issued (or back to `issued` if it is refused).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from kaipiao.domain.codes import new_serial_no
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.sellers import Seller
from kaipiao.domain.words import amount_in_words
from kaipiao.services import ids
from kaipiao.services.errors import Conflict, NotFound
from kaipiao.store import invoices as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.events import append_event
from kaipiao.store.records import StoredInvoice

# kaipiao's reason codes, with the tax platform's own codes (01 开票有误, 02 销货退回, 03 服务中止,
# 04 销售折让); providers number them differently and map from these.
REASONS: dict[str, str] = {
    "invoicing_error": "01",
    "sales_return": "02",
    "service_stopped": "03",
    "sales_discount": "04",
}


def _negate(text: str) -> str:
    return str(-Decimal(text))


def create_red(conn: Conn, original: StoredInvoice, reason: str, now: datetime) -> StoredInvoice:
    """Insert the red invoice for `original` (issued) and move the original to reversing."""
    lines: list[dict[str, Any]] = [
        {**line, "quantity": _negate(line["quantity"]), "amount": _negate(line["amount"]),
         "tax": _negate(line["tax"])}
        for line in original.lines
    ]  # fmt: skip
    row = {
        "id": ids.invoice_id(now),
        "seller_id": original.seller_id,
        "order_id": original.order_id,
        "kind": Kind.RED,
        "region": original.region,
        "original_id": original.id,
        "status": Status.QUEUED,
        "invoice_type": original.invoice_type,
        "serial_no": new_serial_no(now),
        "request_hash": original.request_hash,
        "buyer": original.buyer,
        "lines": lines,
        "remark": original.remark,
        "callback_url": original.callback_url,
        "total_amount": -original.total_amount,
        "total_tax": -original.total_tax,
        "total": -original.total,
        "total_in_words": amount_in_words(-original.total),
        "reverse_reason": reason,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    red = repo.insert_invoice(conn, row)
    append_event(
        conn, invoice_id=red.id, seller_id=red.seller_id, type="accepted",
        payload={"kind": "red", "original_id": original.id, "serial_no": red.serial_no,
                 "reason": reason, "total": red.total},
        now=now,
    )  # fmt: skip
    moved = repo.transition(
        conn, original, Status.REVERSING, now=now, event="reversing",
        payload={"red_id": red.id, "reason": reason},
    )  # fmt: skip
    if not moved:
        raise Conflict("the invoice changed meanwhile; try again", "request_in_progress")
    return red


def _reverse(
    seller: Seller, invoice_id: str, reason: str, now: datetime
) -> Callable[[Conn], StoredInvoice]:
    def work(conn: Conn) -> StoredInvoice:
        original = repo.get_invoice(conn, invoice_id, seller_id=seller.id, lock=True)
        if original is None:
            raise NotFound(f"no invoice {invoice_id}")
        if original.kind is Kind.RED:
            raise Conflict("a red invoice cannot be reversed", "not_reversible")
        if original.status in (Status.REVERSING, Status.REVERSED):
            raise Conflict(f"invoice {invoice_id} is already {original.status}", "already_reversed")
        if original.status is not Status.ISSUED:
            raise Conflict(
                f"only issued invoices can be reversed; this one is {original.status}"
                + (" (cancel it instead)" if original.status is Status.QUEUED else ""),
                "not_issued",
            )
        return create_red(conn, original, reason, now)

    return work


async def reverse_invoice(
    db: Database, seller: Seller, invoice_id: str, reason: str, *, now: datetime
) -> StoredInvoice:
    """Queue a red invoice against an issued one; returns the red invoice."""
    if reason not in REASONS:
        raise Conflict(f"reason must be one of {', '.join(REASONS)}", "invalid_reason")
    return await db.write(_reverse(seller, invoice_id, reason, now))
