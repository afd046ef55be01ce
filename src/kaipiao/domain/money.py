"""Money and tax arithmetic for invoice lines, in `Decimal` only.

Rules (数电 issuing practice, also the provider's validation):
- quantities and unit prices carry at most 8 decimals; amounts and taxes 2, rounded half-up;
- price excluding tax: amount = round(qty × price, 2), tax = round(amount × rate, 2);
- price including tax (价税分离): gross = round(qty × price, 2),
  amount = round(gross / (1 + rate), 2), tax = gross − amount;
- the platform refuses a line where |amount × rate − tax| > 0.06.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from kaipiao.domain.rates import TaxRate

CENT = Decimal("0.01")
PRICE_PLACES = 8
PLATFORM_TOLERANCE = Decimal("0.06")
# Bounds far above any real invoice (single-invoice limits are millions of yuan) that keep every
# product exact: 12 + 8 digits in, 40 digits of precision while computing.
MAX_QUANTITY_OR_PRICE = Decimal("1e12")
MAX_INVOICE_TOTAL = Decimal("1e15")
_PRECISION = 60


def round_cents(value: Decimal) -> Decimal:
    """Round to 2 decimals, half-up, as the tax platform does."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def decimal_places(value: Decimal) -> int:
    """Number of digits after the point that `value` states (trailing zeros count)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


@dataclass(frozen=True, slots=True)
class LineMoney:
    """The computed money of one line: amount excludes tax, gross includes it."""

    amount: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.amount + self.tax


def price_line(
    quantity: Decimal, unit_price: Decimal, rate: TaxRate, *, price_includes_tax: bool
) -> LineMoney:
    """Compute a line's amount and tax from quantity, unit price and rate.

    Exact for |quantity|, |unit_price| < MAX_QUANTITY_OR_PRICE: the products are computed with
    enough precision that the only rounding is the half-up rounding to cents.
    """
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        extended = round_cents(quantity * unit_price)
        if rate.zero_tax:
            return LineMoney(amount=extended, tax=Decimal("0.00"))
        if price_includes_tax:
            amount = round_cents(extended / (1 + rate.rate))
            return LineMoney(amount=amount, tax=extended - amount)
        return LineMoney(amount=extended, tax=round_cents(extended * rate.rate))


def within_platform_tolerance(amount: Decimal, tax: Decimal, rate: TaxRate) -> bool:
    """The platform's per-line check: |amount × rate − tax| ≤ 0.06."""
    return abs(amount * rate.rate - tax) <= PLATFORM_TOLERANCE


@dataclass(frozen=True, slots=True)
class Totals:
    total_amount: Decimal
    total_tax: Decimal

    @property
    def total(self) -> Decimal:
        return self.total_amount + self.total_tax


def sum_lines(lines: Iterable[LineMoney]) -> Totals:
    """Invoice totals: the sums of the lines' amounts and taxes (never recomputed from totals)."""
    amount = Decimal("0.00")
    tax = Decimal("0.00")
    for line in lines:
        amount += line.amount
        tax += line.tax
    return Totals(total_amount=amount, total_tax=tax)


def price_discount(discount: Decimal, rate: TaxRate, *, price_includes_tax: bool) -> LineMoney:
    """The money of a discount line (折扣行): `discount` is stated in its goods line's own basis
    (excluding tax, or including it when the goods line's price includes tax) and priced by the
    same rules as a line whose extended value is `discount`, then negated."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        value = round_cents(discount)
        if rate.zero_tax:
            return LineMoney(amount=-value, tax=Decimal("0.00"))
        if price_includes_tax:
            amount = round_cents(value / (1 + rate.rate))
            return LineMoney(amount=-amount, tax=-(value - amount))
        return LineMoney(amount=-value, tax=-round_cents(value * rate.rate))


def cumulative_shares(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `total` (cents) in proportion to `weights` so that the shares sum to `total` exactly:
    share k = round(total × W_k / W) − round(total × W_{k−1} / W), W_k the running sum of the
    weights. Each share is within one cent of its exact proportion, and a weight of zero gets
    zero. Deterministic: the same inputs always give the same shares."""
    whole = sum(weights, Decimal(0))
    if whole == 0:
        return [Decimal("0.00") for _ in weights] if total == 0 else _unsplittable(total)
    shares: list[Decimal] = []
    running = Decimal(0)
    before = Decimal("0.00")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        for weight in weights:
            running += weight
            upto = total if running == whole else round_cents(total * running / whole)
            shares.append(upto - before)
            before = upto
    return shares


def _unsplittable(total: Decimal) -> list[Decimal]:
    raise ValueError(f"cannot split {total} over weights that sum to zero")
