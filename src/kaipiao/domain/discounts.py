"""Discount lines (折扣行): a goods line followed by its discount, issued as two lines.

The rules (数电 practice; the provider's `invoiceLineProperty` 2 marks the discounted line and 1
its discount line):

- a discount belongs to the goods line right before it, with the same name, tax classification
  code and rate (`discount_line_mismatch`, `discount_rate_mismatch`);
- it is an amount in the goods line's own basis: excluding tax, or including it when the line's
  price includes tax; positive as `discount` on the line, negative as a discount line's `amount`,
  with at most 2 decimals (`invalid_discount`);
- it is at most the goods line's own value in that basis (`discount_exceeds_line`): a line may be
  discounted to zero, never below;
- its money follows the line's rules (`money.price_discount`): the discount line carries the
  negative amount and tax, and the invoice's totals are the sums of all lines.
"""

from __future__ import annotations

from decimal import Decimal

from kaipiao.domain.errors import DomainError, FieldProblem
from kaipiao.domain.money import LineMoney, decimal_places, price_discount
from kaipiao.domain.rates import TaxRate, parse_rate

Loc = tuple[str | int, ...]


def _same_rate(first: str, second: str) -> bool:
    try:
        return parse_rate(first) == parse_rate(second)
    except DomainError:
        return True  # the goods line's own check reports the bad rate


def fold_discount(
    index: int,
    goods: tuple[str, str, str] | None,
    line: tuple[str, str, str],
    amount: Decimal,
    out: list[FieldProblem],
) -> Decimal | None:
    """The discount that the discount line at `index` (`line`: name, tax code, rate) gives the
    goods line before it (`goods`: the same three, or None when there is no undiscounted goods
    line right before it), or None after recording why it cannot."""
    loc: Loc = ("lines", index)
    if goods is None:
        out.append(FieldProblem("discount_line_mismatch", loc,
                                "a discount line must follow its own goods line"))  # fmt: skip
        return None
    if goods[:2] != line[:2]:
        out.append(FieldProblem(
            "discount_line_mismatch", loc,
            "a discount line has its goods line's name and tax_code",
        ))  # fmt: skip
        return None
    if not _same_rate(goods[2], line[2]):
        out.append(FieldProblem(
            "discount_rate_mismatch", (*loc, "tax_rate"),
            f"the discount is at {line[2]} but its goods line at {goods[2]}",
        ))  # fmt: skip
        return None
    if not amount.is_finite() or amount >= 0:
        out.append(FieldProblem("invalid_discount", (*loc, "amount"),
                                "a discount line's amount is negative"))  # fmt: skip
        return None
    return -amount


def check_discount(
    loc: Loc,
    discount: Decimal,
    extended: Decimal,
    rate: TaxRate,
    price_includes_tax: bool,
    out: list[FieldProblem],
) -> LineMoney | None:
    """The discount line's money for a goods line whose value in its own basis is `extended`,
    or None after recording why the discount is refused."""
    if not discount.is_finite() or discount <= 0 or decimal_places(discount) > 2:
        out.append(FieldProblem("invalid_discount", (*loc, "discount"),
                                "discount is an amount > 0 with at most 2 decimals"))  # fmt: skip
        return None
    if discount > extended:
        out.append(FieldProblem(
            "discount_exceeds_line", (*loc, "discount"),
            f"discount {discount} is more than the line's {extended}",
        ))  # fmt: skip
        return None
    return price_discount(discount, rate, price_includes_tax=price_includes_tax)
