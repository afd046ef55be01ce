"""The invoice request document (`POST /v1/invoices`) and its parse into the domain's request:
the input of intake, shared by the API, the naive gateway, benches and tests.

Decimals travel as strings: a JSON number would pass through a float somewhere on the way, and
money must not. Integers are accepted (and must fit the same grammar); floats are refused with a
clear message. The grammar and every bound the API enforces are in the schema (OpenAPI).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator
from pydantic_core import PydanticCustomError

from kaipiao.domain.errors import FieldProblem, InvalidInvoice
from kaipiao.domain.invoice import (
    Buyer,
    DiscountLineRequest,
    InvoiceRequest,
    InvoiceType,
    LineRequest,
)
from kaipiao.domain.rates import RATES


def _unset(value: Any) -> bool:
    return value is None


# One grammar for every decimal field: ASCII digits, an optional fraction, nothing else (no
# exponent, sign where not allowed, spaces, underscores, or non-ASCII digits, all of which
# Python's Decimal() would take). Bounded in length, so no value can overflow a computation.
UNSIGNED = r"^[0-9]{1,15}(\.[0-9]{1,12})?$"
SIGNED = r"^-?[0-9]{1,15}(\.[0-9]{1,12})?$"
POSITIVE = r"^(0*[1-9][0-9]{0,14}(\.[0-9]{1,12})?|0{1,15}\.[0-9]{0,11}[1-9][0-9]{0,11})$"
"""Positive (quantity > 0): at least one non-zero digit; still ASCII and bounded."""
MAX_DECIMAL_TEXT = 29


def _decimal_text(pattern: str) -> Callable[[Any], Decimal]:
    grammar = re.compile(pattern, re.ASCII)

    def parse(value: Any) -> Decimal:
        if isinstance(value, (bool, float)):
            raise ValueError('send decimal values as strings, e.g. "12.50"')
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError("expected a decimal string")
        if len(value) > MAX_DECIMAL_TEXT or not grammar.fullmatch(value):
            raise PydanticCustomError(
                "invalid_amount", "{value} is not a decimal of the form {pattern}",
                {"value": repr(value[:40]), "pattern": pattern},
            )  # fmt: skip
        return Decimal(value)

    return parse


def _schema(pattern: str, description: str) -> Any:
    return Field(
        description=description,
        json_schema_extra={"type": "string", "pattern": pattern, "maxLength": MAX_DECIMAL_TEXT},
    )


_AS_TEXT = PlainSerializer(str, return_type=str, when_used="json")
Quantity = Annotated[
    Decimal, BeforeValidator(_decimal_text(POSITIVE)), _AS_TEXT,
    _schema(POSITIVE, "greater than 0; at most 8 decimal places"),
]  # fmt: skip
Price = Annotated[
    Decimal, BeforeValidator(_decimal_text(UNSIGNED)), _AS_TEXT,
    _schema(UNSIGNED, "0 or more, below 10^12; at most 8 decimal places"),
]  # fmt: skip
Stated = Annotated[
    Decimal, BeforeValidator(_decimal_text(SIGNED)), _AS_TEXT,
    _schema(SIGNED, "if stated, must equal the computed value"),
]  # fmt: skip
DecimalStr = Stated
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
    # Required on goods lines (the domain says so with invalid_amount); a discount line has none.
    quantity: Quantity | None = None
    unit_price: Price | None = None
    tax_rate: Annotated[
        str,
        Field(
            description="VAT rate, or exempt (免税) / non_taxable (不征税)",
            json_schema_extra={"enum": [rate.code for rate in RATES]},
        ),
    ]
    price_includes_tax: bool = False
    amount: Stated | None = None
    tax: Stated | None = None
    # New fields are left out of the canonical form while unset, so that a request sent before
    # they existed keeps its hash (and its idempotent replay).
    discount: Price | None = Field(
        default=None,
        exclude_if=_unset,
        description="discount (折扣) in the line's own price basis; issued as a discount line",
    )
    kind: Literal["goods", "discount"] = Field(
        default="goods",
        exclude_if=lambda value: value == "goods",
        description='"discount": this line is the discount of the goods line before it '
        "(same name, tax_code and tax_rate; a negative amount)",
    )

    def to_domain(self, index: int) -> LineRequest | DiscountLineRequest:
        if self.kind == "discount":
            if self.amount is None:
                raise InvalidInvoice([FieldProblem(
                    "invalid_discount", ("lines", index, "amount"),
                    "a discount line states its (negative) amount",
                )])  # fmt: skip
            return DiscountLineRequest(self.name, self.tax_code, self.tax_rate, self.amount)
        missing = [name for name in ("quantity", "unit_price") if getattr(self, name) is None]
        if missing or self.quantity is None or self.unit_price is None:
            raise InvalidInvoice([
                FieldProblem("invalid_amount", ("lines", index, name), f"{name} is required")
                for name in missing
            ])  # fmt: skip
        fields = {k: v for k, v in self.__dict__.items() if k != "kind"}
        return LineRequest(**fields)


OrderId = Annotated[str, Field(min_length=1, max_length=64)]


class InvoiceCreate(_In):
    order_id: OrderId | None = Field(
        default=None, description="the order; or name several in order_ids instead"
    )
    invoice_type: Literal["normal", "special"] = "normal"
    buyer: BuyerCreate
    lines: Annotated[list[LineCreate], Field(min_length=1, max_length=2000)]
    remark: Annotated[str, Field(max_length=200)] | None = None
    callback_url: (
        Annotated[
            str,
            Field(
                max_length=2048,
                pattern=r"^https?://[^\s/?#@]+([/?#][^\s]*)?$",
                description="http(s) URL of a public receiver; checked again (address, no "
                "redirects) at each delivery",
            ),
        ]
        | None
    ) = None
    order_ids: Annotated[list[OrderId], Field(min_length=2, max_length=100)] | None = Field(
        default=None,
        exclude_if=_unset,
        description="合并开票: several orders of this buyer on one invoice (instead of order_id)",
    )

    @model_validator(mode="after")
    def _one_way_to_name_orders(self) -> InvoiceCreate:
        if (self.order_id is None) == (self.order_ids is None):
            raise ValueError("name the order in order_id, or several orders in order_ids")
        return self

    def to_domain(self) -> InvoiceRequest:
        order_ids = tuple(self.order_ids or ())
        return InvoiceRequest(
            order_id=order_ids[0] if order_ids else (self.order_id or ""),
            invoice_type=InvoiceType(self.invoice_type),
            buyer=Buyer(**self.buyer.__dict__),
            lines=tuple(line.to_domain(index) for index, line in enumerate(self.lines)),
            remark=self.remark,
            callback_url=self.callback_url,
            order_ids=order_ids,
        )

    def canonical(self) -> bytes:
        """The request in canonical form (serialised in the schema's field order): equal for
        equal requests however they were formatted, so its hash identifies the request."""
        return self.model_dump_json().encode()
