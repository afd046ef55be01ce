"""Response shapes of the v1 API (`*Public`). Requests are parsed by
`kaipiao.services.invoice_request` (`InvoiceCreate`), which every entry point shares; responses
are rendered by `kaipiao.store.documents.render_invoice`, whose shape `InvoicePublic` documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class ErrorPublic(BaseModel):
    code: str
    message: str | None


class LinePublic(BaseModel):
    kind: Literal["goods", "discount"] = "goods"  # absent on a line without discount
    name: str
    tax_code: str
    spec: str | None
    unit: str | None
    quantity: str | None  # None on a discount line and an amount reversal's red line
    unit_price: str | None
    tax_rate: str
    price_includes_tax: bool
    amount: str
    tax: str
    original_index: int | None = None  # a red line: the original's line it reverses


class BuyerPublic(BaseModel):
    name: str
    tax_id: str | None
    address: str | None
    phone: str | None
    bank: str | None
    account: str | None
    email: str | None


class FilePublic(BaseModel):
    kind: Literal["pdf", "xml"]
    media_type: str
    url: str
    sha3_256: str
    size: int
    stored_at: datetime


class DeliveryPublic(BaseModel):
    status: Literal["pending", "sent", "failed"]
    to: str
    attempts: int
    reason: str | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None


class InvoicePublic(BaseModel):
    id: str
    order_id: str
    kind: Literal["blue", "red"]
    status: Literal[
        "queued", "issuing", "issued", "rejected", "cancelled", "reversing", "reversed", "attention"
    ]
    invoice_type: Literal["normal", "special"]
    serial_no: str
    invoice_number: str | None
    issued_at: datetime | None
    total_amount: str
    total_tax: str
    total: str
    total_in_words: str
    lines: list[LinePublic]
    buyer: BuyerPublic
    remark: str | None
    callback_url: str | None
    attempts: int
    next_attempt_at: datetime | None
    cancel_requested: bool
    error: ErrorPublic | None
    original_id: str | None
    created_at: datetime
    updated_at: datetime
    part: int
    parts: int
    order_ids: list[str]
    reversible_total: str | None
    files: list[FilePublic]
    delivery: DeliveryPublic | None


class InvoicePage(BaseModel):
    data: list[InvoicePublic]
    next_cursor: str | None
