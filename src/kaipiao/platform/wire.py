"""JSON shapes of the sandbox platform protocol, shared by the HTTP client and the sandbox server.

Decimals travel as strings; times as ISO 8601 UTC. `decode_*` raise WireError with a stable code
for anything malformed, so the server answers 400 and never 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaipiao.domain.invoice import Buyer
from kaipiao.platform.protocol import (
    ListedInvoice,
    PlatformInvoice,
    PlatformLine,
    RedRequest,
)


class WireError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _BuyerBody(_Model):
    name: str = Field(min_length=1, max_length=200)
    tax_id: str | None = None
    address: str | None = None
    phone: str | None = None
    bank: str | None = None
    account: str | None = None
    email: str | None = None


class _LineBody(_Model):
    name: str
    tax_code: str
    quantity: Decimal | None = Field(default=None, allow_inf_nan=False)
    unit_price: Decimal | None = Field(default=None, allow_inf_nan=False)
    tax_rate: str
    amount: Decimal = Field(allow_inf_nan=False)
    tax: Decimal = Field(allow_inf_nan=False)
    spec: str | None = None
    unit: str | None = None
    kind: str = "goods"
    original_index: int | None = None


class _IssueBody(_Model):
    serial_no: str = Field(min_length=1, max_length=20)
    order_ref: str = Field(min_length=1, max_length=80)  # an order id, and "/k" for part k
    seller_tax_id: str = Field(min_length=1)
    seller_region: str | None = None
    invoice_type: str
    buyer: _BuyerBody
    lines: list[_LineBody]
    total_amount: Decimal = Field(allow_inf_nan=False)
    total_tax: Decimal = Field(allow_inf_nan=False)
    total: Decimal = Field(allow_inf_nan=False)
    remark: str | None = None


class _RedBody(_Model):
    serial_no: str = Field(min_length=1, max_length=20)
    original_invoice_number: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    seller_tax_id: str = Field(min_length=1)
    seller_region: str | None = None
    lines: list[_LineBody] = Field(default_factory=list)
    total_amount: Decimal | None = Field(default=None, allow_inf_nan=False)
    total_tax: Decimal | None = Field(default=None, allow_inf_nan=False)
    total: Decimal | None = Field(default=None, allow_inf_nan=False)


def _first_error(exc: ValidationError) -> WireError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return WireError("invalid_request", f"{loc}: {err['msg']}" if loc else err["msg"])


def encode_invoice(invoice: PlatformInvoice) -> dict[str, Any]:
    return {
        "serial_no": invoice.serial_no,
        "order_ref": invoice.order_ref,
        "seller_tax_id": invoice.seller_tax_id,
        "seller_region": invoice.seller_region,
        "invoice_type": invoice.invoice_type,
        "buyer": {k: getattr(invoice.buyer, k) for k in _BuyerBody.model_fields},
        "lines": [encode_line(line) for line in invoice.lines],
        "total_amount": str(invoice.total_amount),
        "total_tax": str(invoice.total_tax),
        "total": str(invoice.total),
        "remark": invoice.remark,
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def encode_line(line: PlatformLine) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": line.name,
        "tax_code": line.tax_code,
        "spec": line.spec,
        "unit": line.unit,
        "quantity": _text(line.quantity),
        "unit_price": _text(line.unit_price),
        "tax_rate": line.tax_rate,
        "amount": str(line.amount),
        "tax": str(line.tax),
    }
    if line.kind != "goods":
        body["kind"] = line.kind
    if line.original_index is not None:
        body["original_index"] = line.original_index
    return body


def decode_invoice(data: Any) -> PlatformInvoice:
    try:
        body = _IssueBody.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None
    return PlatformInvoice(
        serial_no=body.serial_no,
        order_ref=body.order_ref,
        seller_tax_id=body.seller_tax_id,
        seller_region=body.seller_region,
        invoice_type=body.invoice_type,
        buyer=Buyer(**body.buyer.model_dump()),
        lines=tuple(PlatformLine(**line.model_dump()) for line in body.lines),
        total_amount=body.total_amount,
        total_tax=body.total_tax,
        total=body.total,
        remark=body.remark,
    )


def encode_red(request: RedRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "serial_no": request.serial_no,
        "original_invoice_number": request.original_invoice_number,
        "reason": request.reason,
        "seller_tax_id": request.seller_tax_id,
        "seller_region": request.seller_region,
    }
    if request.lines:
        body["lines"] = [encode_line(line) for line in request.lines]
        body.update(total_amount=_text(request.total_amount), total_tax=_text(request.total_tax),
                    total=_text(request.total))  # fmt: skip
    return body


def decode_red(data: Any) -> RedRequest:
    try:
        body = _RedBody.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None
    fields = body.model_dump(exclude={"lines"})
    lines = tuple(PlatformLine(**line.model_dump()) for line in body.lines)
    return RedRequest(**fields, lines=lines)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 instant; naive times are refused because they hide a timezone bug."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no timezone")
    return moment.astimezone(UTC)


def encode_listed(item: ListedInvoice) -> dict[str, Any]:
    return {
        "serial_no": item.serial_no,
        "invoice_number": item.invoice_number,
        "kind": item.kind,
        "order_ref": item.order_ref,
        "issued_at": format_time(item.issued_at),
        "total": str(item.total),
        "original_invoice_number": item.original_invoice_number,
    }


def decode_listed(data: dict[str, Any]) -> ListedInvoice:
    return ListedInvoice(
        serial_no=data["serial_no"],
        invoice_number=data["invoice_number"],
        kind=data["kind"],
        order_ref=data.get("order_ref"),
        issued_at=parse_time(data["issued_at"]),
        total=Decimal(data["total"]),
        original_invoice_number=data.get("original_invoice_number"),
    )
