"""The stored form of a newly accepted order: one `invoices` row per part, each with its lines
as the public JSON shows them (a discounted goods line followed by its `"kind": "discount"`
line) and its first ledger event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaipiao.domain.codes import new_serial_no
from kaipiao.domain.invoice import InvoiceRequest, PricedLine
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.sellers import Seller
from kaipiao.domain.split import PricedPart
from kaipiao.services import ids


def line_json(lines: tuple[PricedLine, ...]) -> list[dict[str, Any]]:
    """The lines of an invoice: each goods line, and right after it its discount line (same
    name, tax code and rate; negative amount and tax; no quantity or price)."""
    out: list[dict[str, Any]] = []
    for line in lines:
        request = line.request
        goods = {
            "name": request.name,
            "tax_code": request.tax_code,
            "spec": request.spec,
            "unit": request.unit,
            "quantity": str(request.quantity),
            "unit_price": str(request.unit_price),
            "tax_rate": line.rate.code,
            "price_includes_tax": request.price_includes_tax,
            "amount": str(line.money.amount),
            "tax": str(line.money.tax),
        }
        if line.discount is None:
            out.append(goods)
            continue
        out.append({"kind": "goods", **goods})
        out.append({
            "kind": "discount", "name": request.name, "tax_code": request.tax_code,
            "spec": None, "unit": None, "quantity": None, "unit_price": None,
            "tax_rate": line.rate.code, "price_includes_tax": request.price_includes_tax,
            "amount": str(line.discount.amount), "tax": str(line.discount.tax),
        })  # fmt: skip
    return out


def buyer_json(request: InvoiceRequest) -> dict[str, Any]:
    buyer = request.buyer
    return {
        "name": buyer.name, "tax_id": buyer.tax_id, "address": buyer.address,
        "phone": buyer.phone, "bank": buyer.bank, "account": buyer.account, "email": buyer.email,
    }  # fmt: skip


def part_row(
    seller: Seller, request: InvoiceRequest, part: PricedPart, digest: str, now: datetime
) -> dict[str, Any]:
    """The `invoices` row of one part of a newly accepted order (queued, due now)."""
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
        "buyer": buyer_json(request),
        "lines": line_json(part.lines),
        "remark": request.remark,
        "callback_url": request.callback_url,
        "total_amount": part.totals.total_amount,
        "total_tax": part.totals.total_tax,
        "total": part.totals.total,
        "total_in_words": part.total_in_words,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        "part": part.part,
        "parts": part.parts,
        "order_ids": list(request.order_ids) if request.order_ids else None,
        "reversible_total": part.totals.total,
    }


def accepted_event(row: dict[str, Any], warnings: tuple[str, ...]) -> dict[str, Any]:
    """The `accepted` ledger event of a new row."""
    payload: dict[str, Any] = {
        "order_id": row["order_id"], "serial_no": row["serial_no"],
        "request_hash": row["request_hash"], "total": row["total"], "warnings": list(warnings),
    }  # fmt: skip
    if row["parts"] > 1:
        payload.update(part=row["part"], parts=row["parts"])
    if row["order_ids"]:
        payload["order_ids"] = row["order_ids"]
    return {"invoice_id": row["id"], "seller_id": row["seller_id"], "type": "accepted",
            "created_at": row["created_at"], "payload": payload}  # fmt: skip
