"""Request and response shapes of the v1 API (`*Create` in, `*Public` out).

Decimals travel as strings: a JSON number would pass through a float somewhere on the way, and
money must not. Integers are accepted; floats are refused with a clear message.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from kaipiao.domain.invoice import Buyer, InvoiceRequest, InvoiceType, LineRequest
from kaipiao.domain.rates import RATES
from kaipiao.store.invoices import StoredInvoice


def _decimal_text(value: Any) -> Decimal:
    if isinstance(value, (bool, float)):
        raise ValueError('send decimal values as strings, e.g. "12.50"')
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        raise ValueError("expected a decimal string")
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError("decimal values must be finite")
    return number


DecimalStr = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    PlainSerializer(str, return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}),
]
Text = Annotated[str, Field(max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class BuyerCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    tax_id: Annotated[str, Field(max_length=20)] | None = None
    address: Text | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    bank: Text | None = None
    account: Annotated[str, Field(max_length=64)] | None = None
    email: Annotated[str, Field(max_length=200)] | None = None


class LineCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    # Documented, not enforced here: the domain rules check them and answer with specific codes
    # (invalid_tax_code, invalid_tax_rate) rather than a generic schema error.
    tax_code: Annotated[
        str,
        Field(
            description="19-digit tax classification code",
            json_schema_extra={"pattern": "^[0-9]{19}$"},
        ),
    ]
    spec: Text | None = None
    unit: Annotated[str, Field(max_length=20)] | None = None
    quantity: DecimalStr
    unit_price: DecimalStr
    tax_rate: Annotated[
        str,
        Field(
            description="VAT rate, or exempt (免税) / non_taxable (不征税)",
            json_schema_extra={"enum": [rate.code for rate in RATES]},
        ),
    ]
    price_includes_tax: bool = False
    amount: DecimalStr | None = Field(default=None, description="if stated, must match")
    tax: DecimalStr | None = Field(default=None, description="if stated, must match")


class InvoiceCreate(_In):
    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    invoice_type: Literal["normal", "special"] = "normal"
    buyer: BuyerCreate
    lines: Annotated[list[LineCreate], Field(min_length=1, max_length=2000)]
    remark: Annotated[str, Field(max_length=200)] | None = None
    callback_url: Annotated[str, Field(max_length=2048, pattern=r"^https?://")] | None = None

    def to_domain(self) -> InvoiceRequest:
        return InvoiceRequest(
            order_id=self.order_id,
            invoice_type=InvoiceType(self.invoice_type),
            buyer=Buyer(**self.buyer.__dict__),
            lines=tuple(LineRequest(**line.__dict__) for line in self.lines),
            remark=self.remark,
            callback_url=self.callback_url,
        )


class ErrorPublic(BaseModel):
    code: str
    message: str | None


class LinePublic(BaseModel):
    name: str
    tax_code: str
    spec: str | None
    unit: str | None
    quantity: str
    unit_price: str
    tax_rate: str
    price_includes_tax: bool
    amount: str
    tax: str


class BuyerPublic(BaseModel):
    name: str
    tax_id: str | None
    address: str | None
    phone: str | None
    bank: str | None
    account: str | None
    email: str | None


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


class InvoicePage(BaseModel):
    data: list[InvoicePublic]
    next_cursor: str | None


def render_invoice(invoice: StoredInvoice) -> dict[str, Any]:
    """The invoice resource as JSON-ready data (also what idempotent replays return)."""
    error = (
        {"code": invoice.error_code, "message": invoice.error_message}
        if invoice.error_code
        else None
    )
    return {
        "id": invoice.id,
        "order_id": invoice.order_id,
        "kind": invoice.kind.value,
        "status": invoice.status.value,
        "invoice_type": invoice.invoice_type,
        "serial_no": invoice.serial_no,
        "invoice_number": invoice.invoice_number,
        "issued_at": _time(invoice.issued_at),
        "total_amount": str(invoice.total_amount),
        "total_tax": str(invoice.total_tax),
        "total": str(invoice.total),
        "total_in_words": invoice.total_in_words,
        "lines": invoice.lines,
        "buyer": invoice.buyer,
        "remark": invoice.remark,
        "callback_url": invoice.callback_url,
        "attempts": invoice.attempts,
        "next_attempt_at": _time(invoice.next_attempt_at),
        "cancel_requested": invoice.cancel_requested,
        "error": error,
        "original_id": invoice.original_id,
        "created_at": _time(invoice.created_at),
        "updated_at": _time(invoice.updated_at),
    }


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
