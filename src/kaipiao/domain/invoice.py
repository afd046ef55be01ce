"""An invoice request, the rules it must meet, and its priced form.

`price_invoice` is the single place where a request becomes money: every line's amount and tax,
the totals and the amount in words. It gathers every problem it finds instead of stopping at the
first, so a caller can fix a request in one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from kaipiao.domain.codes import is_tax_code
from kaipiao.domain.credit_code import CheckMode, validate_tax_id
from kaipiao.domain.errors import (
    DomainError,
    ExceedsInvoiceLimit,
    FieldProblem,
    InvalidInvoice,
)
from kaipiao.domain.money import (
    MAX_INVOICE_TOTAL,
    MAX_QUANTITY_OR_PRICE,
    PRICE_PLACES,
    LineMoney,
    Totals,
    decimal_places,
    price_line,
    sum_lines,
    within_platform_tolerance,
)
from kaipiao.domain.rates import TaxRate, parse_rate
from kaipiao.domain.words import amount_in_words

MAX_LINES = 2000
MAX_ORDER_ID = 64


class InvoiceType(StrEnum):
    NORMAL = "normal"  # 数电普票
    SPECIAL = "special"  # 数电专票


@dataclass(frozen=True, slots=True)
class Buyer:
    name: str
    tax_id: str | None = None
    address: str | None = None
    phone: str | None = None
    bank: str | None = None
    account: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class LineRequest:
    """A line as the caller states it; a stated `amount` or `tax` must match ours to the cent."""

    name: str
    tax_code: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: str
    price_includes_tax: bool = False
    spec: str | None = None
    unit: str | None = None
    amount: Decimal | None = None
    tax: Decimal | None = None


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    order_id: str
    invoice_type: InvoiceType
    buyer: Buyer
    lines: tuple[LineRequest, ...]
    remark: str | None = None
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class SellerPolicy:
    """Per-seller rules: an optional ceiling on an invoice's total, and how strict tax ids are."""

    invoice_limit: Decimal | None = None
    tax_id_check: CheckMode = CheckMode.REJECT


@dataclass(frozen=True, slots=True)
class PricedLine:
    request: LineRequest
    rate: TaxRate
    money: LineMoney


@dataclass(frozen=True, slots=True)
class PricedInvoice:
    request: InvoiceRequest
    lines: tuple[PricedLine, ...]
    totals: Totals
    total_in_words: str
    warnings: tuple[str, ...] = field(default=())


def _check_line(index: int, line: LineRequest, out: list[FieldProblem]) -> PricedLine | None:
    loc: tuple[str | int, ...] = ("lines", index)
    start = len(out)
    if not line.name.strip():
        out.append(FieldProblem("invalid_line", (*loc, "name"), "name must not be empty"))
    if not is_tax_code(line.tax_code):
        out.append(
            FieldProblem("invalid_tax_code", (*loc, "tax_code"), "tax_code must be 19 digits")
        )
    for name, value in (("quantity", line.quantity), ("unit_price", line.unit_price)):
        if not value.is_finite():
            out.append(FieldProblem("invalid_amount", (*loc, name), f"{name} must be a number"))
        elif abs(value) >= MAX_QUANTITY_OR_PRICE:
            out.append(FieldProblem("invalid_amount", (*loc, name), f"{name} must be below 10^12"))
        elif decimal_places(value) > PRICE_PLACES:
            out.append(
                FieldProblem(
                    "invalid_amount", (*loc, name), f"{name} has more than 8 decimal places"
                )
            )
    if line.quantity.is_finite() and line.quantity <= 0:
        out.append(FieldProblem("invalid_amount", (*loc, "quantity"), "quantity must be > 0"))
    if line.unit_price.is_finite() and line.unit_price < 0:
        out.append(FieldProblem("invalid_amount", (*loc, "unit_price"), "unit_price must be ≥ 0"))
    try:
        rate = parse_rate(line.tax_rate)
    except DomainError as exc:
        out.append(FieldProblem(exc.code, (*loc, "tax_rate"), exc.message))
        return None
    if len(out) > start:
        return None
    money = price_line(
        line.quantity, line.unit_price, rate, price_includes_tax=line.price_includes_tax
    )
    for name, stated, computed in (
        ("amount", line.amount, money.amount),
        ("tax", line.tax, money.tax),
    ):
        if stated is not None and stated != computed:
            out.append(
                FieldProblem(
                    "tax_mismatch", (*loc, name), f"stated {name} {stated} but it is {computed}"
                )
            )
    if not within_platform_tolerance(money.amount, money.tax, rate):
        out.append(
            FieldProblem(
                "tax_mismatch", (*loc, "tax"), "|amount × rate − tax| exceeds the 0.06 tolerance"
            )
        )
    return PricedLine(line, rate, money) if len(out) == start else None


def price_invoice(request: InvoiceRequest, policy: SellerPolicy) -> PricedInvoice:
    """Validate `request` against every rule and compute its money.

    Raises InvalidInvoice (all problems found) or ExceedsInvoiceLimit.
    """
    problems: list[FieldProblem] = []
    warnings: list[str] = []
    if not 1 <= len(request.order_id) <= MAX_ORDER_ID or not request.order_id.strip():
        problems.append(
            FieldProblem("invalid_order_id", ("order_id",), "order_id must be 1–64 characters")
        )
    if not request.buyer.name.strip():
        problems.append(FieldProblem("invalid_buyer", ("buyer", "name"), "buyer name is required"))
    if request.buyer.tax_id:
        try:
            warning = validate_tax_id(request.buyer.tax_id, policy.tax_id_check)
        except DomainError as exc:
            problems.append(FieldProblem(exc.code, ("buyer", "tax_id"), exc.message))
        else:
            if warning:
                warnings.append(warning)
    elif request.invoice_type is InvoiceType.SPECIAL:
        problems.append(
            FieldProblem(
                "invalid_buyer_tax_id",
                ("buyer", "tax_id"),
                "a special (专票) invoice needs the buyer's tax id",
            )
        )
    if not request.lines:
        problems.append(FieldProblem("no_lines", ("lines",), "an invoice needs at least one line"))
    if len(request.lines) > MAX_LINES:
        problems.append(
            FieldProblem(
                "too_many_lines",
                ("lines",),
                f"{len(request.lines)} lines; at most {MAX_LINES} fit on one invoice",
            )
        )
        raise InvalidInvoice(problems)
    priced = [_check_line(i, line, problems) for i, line in enumerate(request.lines)]
    if problems:
        raise InvalidInvoice(problems)
    lines = tuple(p for p in priced if p is not None)
    totals = sum_lines(p.money for p in lines)
    if abs(totals.total) >= MAX_INVOICE_TOTAL:
        raise InvalidInvoice(
            [FieldProblem("invalid_amount", ("lines",), "the invoice total must be below 10^15")]
        )
    if policy.invoice_limit is not None and totals.total > policy.invoice_limit:
        raise ExceedsInvoiceLimit(
            f"invoice total {totals.total} exceeds the seller's limit {policy.invoice_limit}"
        )
    return PricedInvoice(
        request=request,
        lines=lines,
        totals=totals,
        total_in_words=amount_in_words(totals.total),
        warnings=tuple(warnings),
    )


def reverse_lines(lines: tuple[PricedLine, ...]) -> tuple[PricedLine, ...]:
    """The lines of a red-letter invoice: quantities, amounts and taxes negated, prices kept."""
    return tuple(
        replace(
            line,
            request=replace(line.request, quantity=-line.request.quantity, amount=None, tax=None),
            money=LineMoney(amount=-line.money.amount, tax=-line.money.tax),
        )
        for line in lines
    )
