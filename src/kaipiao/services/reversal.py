"""Red-letter (红字) reversal: a red invoice against an issued blue one, for all of it or a part.

数电 invoices cannot be voided, only reversed. The red invoice is an invoice of its own (kind red,
`original_id`), issued by the engine like any other. A reversal takes lines and quantities, or
an amount including tax, or (neither) everything left (`domain.reversal`); what it takes is
reserved on the original at once, under the original's row lock with a compare-and-set on its
`reversible_total` (`store.reversals`), so concurrent reversals can never together exceed it.
While something is left the original stays `issued`; the reversal that takes the rest moves it
`issued → reversing`, and it is `reversed` once no red invoice against it is still on its way.
A red invoice refused gives back what it had reserved (and `reversing → issued`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from kaipiao.domain.codes import new_serial_no
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.rates import parse_rate
from kaipiao.domain.reversal import ReversalPlan, Reversible, plan_reversal
from kaipiao.domain.sellers import Seller
from kaipiao.services import ids
from kaipiao.services.errors import Conflict, NotFound
from kaipiao.store import invoices as repo
from kaipiao.store import reversals
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
PRICE = Decimal("0.00000001")


def _items_from_lines(lines: list[dict[str, Any]]) -> list[Reversible]:
    """The original's goods lines, each with its discount line merged in."""
    items: list[Reversible] = []
    for index, line in enumerate(lines):
        amount, tax = Decimal(line["amount"]), Decimal(line["tax"])
        if line.get("kind") == "discount" and items:
            goods = items[-1]
            net_amount, net_tax = goods.amount + amount, goods.tax + tax
            basis = net_amount + net_tax if line.get("price_includes_tax") else net_amount
            unit = (basis / goods.quantity).quantize(PRICE) if goods.quantity else goods.unit_price
            items[-1] = replace(goods, amount=net_amount, tax=net_tax, unit_price=unit)
            continue
        items.append(Reversible(
            index=index, rate=parse_rate(line["tax_rate"]),
            unit_price=Decimal(line["unit_price"]), quantity=Decimal(line["quantity"]),
            amount=amount, tax=tax,
        ))  # fmt: skip
    return items


def reversible_items(original: StoredInvoice) -> tuple[Reversible, ...]:
    """What is left to reverse of each goods line of `original`."""
    items = _items_from_lines(original.lines)
    if original.reversible is None:
        return tuple(items)
    left = {entry["index"]: entry for entry in original.reversible}
    return tuple(
        replace(item, quantity=Decimal(left[item.index]["quantity"]),
                amount=Decimal(left[item.index]["amount"]), tax=Decimal(left[item.index]["tax"]))
        if item.index in left else item
        for item in items
    )  # fmt: skip


def _items_json(items: tuple[Reversible, ...]) -> list[dict[str, Any]]:
    return [
        {"index": item.index, "quantity": str(item.quantity), "amount": str(item.amount),
         "tax": str(item.tax)}
        for item in items
    ]  # fmt: skip


def _red_lines(original: StoredInvoice, plan: ReversalPlan) -> list[dict[str, Any]]:
    lines = []
    for red in plan.lines:
        source = original.lines[red.index]
        lines.append({
            "name": source["name"], "tax_code": source["tax_code"], "spec": source.get("spec"),
            "unit": source.get("unit"),
            "quantity": None if red.quantity is None else str(red.quantity),
            "unit_price": None if red.unit_price is None else str(red.unit_price),
            "tax_rate": source["tax_rate"],
            "price_includes_tax": bool(source.get("price_includes_tax", False)),
            "amount": str(red.money.amount), "tax": str(red.money.tax),
            "original_index": red.index,
        })  # fmt: skip
    return lines


def create_red(
    conn: Conn,
    original: StoredInvoice,
    reason: str,
    now: datetime,
    *,
    lines: list[tuple[int, Decimal]] | None = None,
    amount: Decimal | None = None,
) -> StoredInvoice:
    """Insert the red invoice for `original` (issued, locked by the caller) and reserve what it
    takes: all that is left, or `lines` (index, quantity), or `amount` (including tax).

    Raises InvalidReversal (a request the original cannot take) or Conflict."""
    plan = plan_reversal(reversible_items(original), lines=lines, amount=amount)
    left = plan.reversible_total
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
        "lines": _red_lines(original, plan),
        "remark": original.remark,
        "callback_url": original.callback_url,
        "total_amount": plan.totals.total_amount,
        "total_tax": plan.totals.total_tax,
        "total": plan.totals.total,
        "total_in_words": plan.total_in_words,
        "reverse_reason": reason,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    red = repo.insert_invoice(conn, row)
    partial = left != 0
    append_event(
        conn, invoice_id=red.id, seller_id=red.seller_id, type="accepted",
        payload={"kind": "red", "original_id": original.id, "serial_no": red.serial_no,
                 "reason": reason, "total": red.total, "partial": partial},
        now=now,
    )  # fmt: skip
    items = _items_json(plan.remaining)
    payload = {"red_id": red.id, "reason": reason, "red_total": red.total}
    if partial:
        moved = reversals.set_reversible(
            conn, original, total=left, items=items, now=now, event="reversal_reserved",
            payload=payload,
        )  # fmt: skip
    else:
        moved = repo.transition(
            conn, original, Status.REVERSING, now=now, event="reversing", payload=payload,
            fields={"reversible_total": Decimal("0.00"), "reversible": _json(items)},
        )  # fmt: skip
    if not moved:
        raise Conflict("the invoice changed meanwhile; try again", "request_in_progress")
    return red


def _json(items: list[dict[str, Any]]) -> str:
    return json.dumps(items)


def release_red(conn: Conn, red: StoredInvoice, now: datetime) -> None:
    """Give back to the original what the refused red invoice `red` had reserved; a reversing
    original goes back to issued."""
    assert red.original_id is not None
    original = repo.get_invoice(conn, red.original_id, lock=True)
    if original is None or original.status not in (Status.ISSUED, Status.REVERSING):
        return
    taken = {line.get("original_index"): line for line in red.lines}
    if None in taken:  # a red invoice from before partial reversals: it took everything
        items = _items_from_lines(original.lines)
        total = original.total
    else:
        items = []
        for item in reversible_items(original):
            line = taken.get(item.index)
            if line is not None:
                units = -Decimal(line["quantity"] or 0)
                item = replace(item, quantity=item.quantity + units,
                               amount=item.amount - Decimal(line["amount"]),
                               tax=item.tax - Decimal(line["tax"]))  # fmt: skip
            items.append(item)
        total = reversals.reversible_total(original) - red.total
    payload = {"red_id": red.id, "code": red.error_code}
    fields = {"reversible_total": reversals.money(total),
              "reversible": _json(_items_json(tuple(items)))}  # fmt: skip
    if original.status is Status.REVERSING:
        repo.transition(
            conn, original, Status.ISSUED, now=now, event="reverse_failed", payload=payload,
            fields=fields,
        )  # fmt: skip
    else:
        reversals.set_reversible(
            conn, original, total=total, items=_items_json(tuple(items)), now=now,
            event="reverse_failed", payload=payload,
        )  # fmt: skip


def finish_red(conn: Conn, red: StoredInvoice, now: datetime) -> None:
    """After `red` was issued: its original is `reversed` once nothing is left of it and no
    other red invoice against it is still on its way."""
    assert red.original_id is not None
    original = repo.get_invoice(conn, red.original_id, lock=True)
    if original is None or original.status is not Status.REVERSING:
        return
    if reversals.reversible_total(original) == 0 and reversals.live_reds(conn, original.id) == 0:
        repo.transition(
            conn, original, Status.REVERSED, now=now, event="reversed",
            payload={"red_id": red.id, "red_number": red.invoice_number},
        )  # fmt: skip


def reverse_work(
    seller: Seller,
    invoice_id: str,
    reason: str,
    now: datetime,
    lines: list[tuple[int, Decimal]] | None,
    amount: Decimal | None,
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
        return create_red(conn, original, reason, now, lines=lines, amount=amount)

    return work


async def reverse_invoice(
    db: Database,
    seller: Seller,
    invoice_id: str,
    reason: str,
    *,
    now: datetime,
    lines: list[tuple[int, Decimal]] | None = None,
    amount: Decimal | None = None,
) -> StoredInvoice:
    """Queue a red invoice against an issued one, for everything left of it, or `lines`
    (index into its `lines`, quantity), or `amount` (including tax); returns the red invoice."""
    if reason not in REASONS:
        raise Conflict(f"reason must be one of {', '.join(REASONS)}", "invalid_reason")
    return await db.write(reverse_work(seller, invoice_id, reason, now, lines, amount))
