"""The invoice request document (`POST /v1/invoices`) and its parse into the domain's request:
the input of intake, shared by the API, the naive gateway, benches and tests.

Decimals travel as strings: a JSON number would pass through a float somewhere on the way, and
money must not. Integers are accepted; floats are refused with a clear message.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from kaipiao.domain.invoice import Buyer, InvoiceRequest, InvoiceType, LineRequest
from kaipiao.domain.rates import RATES


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

    def canonical(self) -> bytes:
        """The request in canonical form (serialised in the schema's field order): equal for
        equal requests however they were formatted, so its hash identifies the request."""
        return self.model_dump_json().encode()
