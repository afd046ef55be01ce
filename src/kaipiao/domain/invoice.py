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
from kaipiao.domain.discounts import check_discount, fold_discount
from kaipiao.domain.errors import DomainError, FieldProblem, InvalidInvoice
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

MAX_LINES = 2000  # the platform's most lines on one invoice, discount lines included
MAX_ORDER_ID = 64
MAX_MERGED_ORDERS = 100


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
    discount: Decimal | None = None  # in the line's own basis: excluding tax, or including it


@dataclass(frozen=True, slots=True)
class DiscountLineRequest:
    """A discount stated as its own line (`"kind": "discount"`), right after its goods line:
    same name, tax code and rate, a negative `amount` in the goods line's basis. It is folded
    into that line's `discount`, so both forms issue the same invoice."""

    name: str
    tax_code: str
    tax_rate: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    order_id: str
    invoice_type: InvoiceType
    buyer: Buyer
    lines: tuple[LineRequest | DiscountLineRequest, ...]
    remark: str | None = None
    callback_url: str | None = None
    # 合并开票: every order this one invoice is for (the first is `order_id`); empty for one order.
    order_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SellerPolicy:
    """Per-seller rules: the per-invoice limit (单张开票限额) on the total excluding tax, or
    including it with `limit_includes_tax`; the most lines an invoice may carry (discount lines
    count); how strict buyer tax ids are. An order over a limit is split (`domain.split`)."""

    invoice_limit: Decimal | None = None
    tax_id_check: CheckMode = CheckMode.REJECT
    limit_includes_tax: bool = False
    max_lines: int = MAX_LINES


@dataclass(frozen=True, slots=True)
class PricedLine:
    """A goods line priced; `discount` is the money of its discount line (negative), if any."""

    request: LineRequest
    rate: TaxRate
    money: LineMoney
    discount: LineMoney | None = None

    @property
    def net(self) -> LineMoney:
        """The goods line and its discount together."""
        if self.discount is None:
            return self.money
        return LineMoney(self.money.amount + self.discount.amount,
                         self.money.tax + self.discount.tax)  # fmt: skip

    @property
    def line_count(self) -> int:
        return 1 if self.discount is None else 2


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
    discount = None
    if line.discount is not None and len(out) == start:
        extended = money.gross if line.price_includes_tax else money.amount
        discount = check_discount(loc, line.discount, extended, rate, line.price_includes_tax, out)
    return PricedLine(line, rate, money, discount) if len(out) == start else None


def _fold_discounts(
    lines: tuple[LineRequest | DiscountLineRequest, ...], out: list[FieldProblem]
) -> list[tuple[int, LineRequest]]:
    """The goods lines with their request index, each discount line folded into the goods line
    before it (`domain.discounts`)."""
    goods: list[tuple[int, LineRequest]] = []
    for index, line in enumerate(lines):
        if isinstance(line, LineRequest):
            goods.append((index, line))
            continue
        before = goods[-1][1] if goods and goods[-1][0] == index - 1 else None
        facts = (
            (before.name, before.tax_code, before.tax_rate)
            if before is not None and before.discount is None
            else None
        )
        discount = fold_discount(
            index, facts, (line.name, line.tax_code, line.tax_rate), line.amount, out
        )
        if discount is not None and before is not None:
            goods[-1] = (index - 1, replace(before, discount=discount))
    return goods


def _check_orders(request: InvoiceRequest, out: list[FieldProblem]) -> None:
    ids = request.order_ids or (request.order_id,)
    for position, order_id in enumerate(ids):
        loc: tuple[str | int, ...] = ("order_ids", position) if request.order_ids else ("order_id",)
        if not 1 <= len(order_id) <= MAX_ORDER_ID or not order_id.strip():
            out.append(FieldProblem("invalid_order_id", loc, "order ids are 1–64 characters"))
    if request.order_ids:
        if not 2 <= len(ids) <= MAX_MERGED_ORDERS:
            out.append(FieldProblem(
                "invalid_order_id", ("order_ids",),
                f"order_ids names 2 to {MAX_MERGED_ORDERS} orders",
            ))  # fmt: skip
        if len(set(ids)) != len(ids):
            out.append(FieldProblem("invalid_order_id", ("order_ids",),
                                    "order_ids names each order once"))  # fmt: skip
        if request.order_id != ids[0]:
            out.append(FieldProblem("invalid_order_id", ("order_id",),
                                    "order_id is the first of order_ids"))  # fmt: skip


def price_invoice(request: InvoiceRequest, policy: SellerPolicy) -> PricedInvoice:
    """Validate `request` against every rule and compute its money.

    Raises InvalidInvoice with all problems found. The seller's limits do not refuse an
    invoice: an order over them is split into several (`domain.split.split_invoice`).
    """
    problems: list[FieldProblem] = []
    warnings: list[str] = []
    _check_orders(request, problems)
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
    goods = _fold_discounts(request.lines, problems)
    priced = [_check_line(i, line, problems) for i, line in goods]
    if problems:
        raise InvalidInvoice(problems)
    lines = tuple(p for p in priced if p is not None)
    totals = sum_lines(p.net for p in lines)
    if abs(totals.total) >= MAX_INVOICE_TOTAL:
        raise InvalidInvoice(
            [FieldProblem("invalid_amount", ("lines",), "the invoice total must be below 10^15")]
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
