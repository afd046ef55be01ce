"""Partial red-letter reversal (部分红冲): which negative lines a red invoice carries, and what of
the original stays reversible.

The original's reversible items are its goods lines, each with its discount merged in (数电 red
forms name the discounted line only and skip its discount line: Nuonuo's
`saveInvoiceRedConfirm` detail, docs/providers.md). Each item keeps what is left of it:
quantity, amount and tax. A reversal takes

- `lines`: k units of item i (k ≤ the units left). Taking all that is left takes exactly the
  amount and tax left; otherwise amount = round(amount left × k / units left) and tax =
  round(amount × rate), never more than the tax left;
- `amount`: a sum A including tax (at most the reversible total), shared over the items in
  proportion to what is left of each (`money.cumulative_shares`, exact to the fen); each share
  is split into amount and tax as a price including tax is (价税分离), never beyond what is left.
  These red lines carry no quantity or price, as a 销售折让 red invoice does;
- neither: everything left, each item exactly.

So reversals never exceed the original, in any order: the left-over amounts only go down, and
the last reversal of an item takes exactly its remainder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from kaipiao.domain.errors import DomainError
from kaipiao.domain.money import (
    LineMoney,
    Totals,
    cumulative_shares,
    decimal_places,
    round_cents,
    sum_lines,
    within_platform_tolerance,
)
from kaipiao.domain.rates import TaxRate
from kaipiao.domain.words import amount_in_words


class InvalidReversal(DomainError):
    """A reversal request the original cannot take: `invalid_reverse_line`,
    `exceeds_reversible`, `invalid_amount`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Reversible:
    """What is left to reverse of one goods line (with its discount) of the original."""

    index: int  # the goods line's position in the original's `lines`
    rate: TaxRate
    unit_price: Decimal  # net of its discount, in the line's own basis
    quantity: Decimal
    amount: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.amount + self.tax


@dataclass(frozen=True, slots=True)
class RedLine:
    """One negative line of a red invoice; quantity and price are None for an amount reversal."""

    index: int
    quantity: Decimal | None
    unit_price: Decimal | None
    money: LineMoney  # negative


@dataclass(frozen=True, slots=True)
class ReversalPlan:
    lines: tuple[RedLine, ...]
    remaining: tuple[Reversible, ...]
    totals: Totals  # negative
    total_in_words: str

    @property
    def reversible_total(self) -> Decimal:
        return sum((item.gross for item in self.remaining), Decimal("0.00"))


def _by_quantity(item: Reversible, units: Decimal) -> LineMoney:
    if units == item.quantity:
        return LineMoney(item.amount, item.tax)
    amount = round_cents(item.amount * units / item.quantity)
    tax = Decimal("0.00") if item.rate.zero_tax else round_cents(amount * item.rate.rate)
    return LineMoney(amount, min(tax, item.tax))


def _by_share(item: Reversible, share: Decimal) -> LineMoney:
    if share == item.gross:
        return LineMoney(item.amount, item.tax)
    amount = share if item.rate.zero_tax else round_cents(share / (1 + item.rate.rate))
    amount = min(amount, item.amount)
    tax = share - amount
    if tax > item.tax:
        tax = item.tax
        amount = share - tax
    return LineMoney(amount, tax)


def _quantity_lines(
    items: dict[int, Reversible], wanted: list[tuple[int, Decimal]]
) -> list[tuple[Reversible, RedLine]]:
    taken: list[tuple[Reversible, RedLine]] = []
    seen: set[int] = set()
    for index, units in wanted:
        item = items.get(index)
        if item is None or index in seen:
            raise InvalidReversal(
                "invalid_reverse_line",
                f"line {index} is not a goods line of the original (or is named twice)",
            )
        seen.add(index)
        if not units.is_finite() or units <= 0 or decimal_places(units) > 8:
            raise InvalidReversal(
                "invalid_reverse_line", f"line {index}: quantity is > 0 with at most 8 decimals"
            )
        if units > item.quantity:
            raise InvalidReversal(
                "exceeds_reversible", f"line {index}: {units} to reverse, {item.quantity} left"
            )
        money = _by_quantity(item, units)
        taken.append((item, RedLine(index, -units, item.unit_price, _negative(money))))
    return taken


def _amount_lines(items: list[Reversible], total: Decimal) -> list[tuple[Reversible, RedLine]]:
    if not total.is_finite() or total <= 0 or decimal_places(total) > 2:
        raise InvalidReversal("invalid_amount", "amount is > 0 with at most 2 decimals")
    left = sum((item.gross for item in items), Decimal(0))
    if total > left:
        raise InvalidReversal("exceeds_reversible", f"{total} to reverse, {left} left")
    shares = cumulative_shares(total, [item.gross for item in items])
    return [
        (item, RedLine(item.index, None, None, _negative(_by_share(item, share))))
        for item, share in zip(items, shares, strict=True)
        if share != 0
    ]


def _negative(money: LineMoney) -> LineMoney:
    return LineMoney(-money.amount, -money.tax)


def plan_reversal(
    items: tuple[Reversible, ...],
    *,
    lines: list[tuple[int, Decimal]] | None = None,
    amount: Decimal | None = None,
) -> ReversalPlan:
    """The red lines for a reversal of `lines` (index, units), or of `amount` (including tax),
    or of everything left (neither), and what stays reversible after it.

    Raises InvalidReversal."""
    by_index = {item.index: item for item in items}
    live = [item for item in items if item.gross != 0 or item.quantity != 0]
    if lines is not None:
        taken = _quantity_lines(by_index, lines)
    elif amount is not None:
        taken = _amount_lines(live, amount)
    else:
        taken = [
            (item, RedLine(item.index, -item.quantity, item.unit_price,
                           _negative(LineMoney(item.amount, item.tax))))
            for item in live
        ]  # fmt: skip
    if not taken:
        raise InvalidReversal("exceeds_reversible", "nothing of the original is left to reverse")
    left = dict(by_index)
    for item, red in taken:
        if not within_platform_tolerance(red.money.amount, red.money.tax, item.rate):
            raise InvalidReversal(
                "exceeds_reversible",
                f"line {item.index}: what is left cannot be reversed in this part "
                "(|amount × rate − tax| would exceed 0.06); reverse all of it",
            )
        units = -red.quantity if red.quantity is not None else Decimal(0)
        left[item.index] = replace(
            item,
            quantity=item.quantity - units,
            amount=item.amount + red.money.amount,
            tax=item.tax + red.money.tax,
        )
    red_lines = tuple(sorted((red for _, red in taken), key=lambda red: red.index))
    totals = sum_lines(red.money for red in red_lines)
    return ReversalPlan(red_lines, tuple(left[item.index] for item in items), totals,
                        amount_in_words(totals.total))  # fmt: skip
