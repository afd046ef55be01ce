"""Splitting an order over the seller's limits into several invoices (拆分开票).

A seller has a limit per invoice (单张开票限额) on the total excluding tax, or including it as
configured, and the platform a maximum number of lines (2000, discount lines included; a seller
may set fewer). An order over either is issued as several invoices, its parts:

- deterministic: the same order and limits always give the same parts, in the same order;
- lines are packed in the order's own order, each into the first part where it still fits (its
  value and its line count, a discounted line counting two with its discount line kept beside
  it); a line is never split across invoices unless it alone exceeds the limit;
- a line alone over the limit has its quantity split into chunks of k units (k as large as fits,
  in the quantity's own decimals, finer only when one unit is over the limit), the last chunk
  taking the rest; each chunk's amount, tax and discount are the line's shares by quantity with
  cumulative rounding (`money.cumulative_shares`), so the chunks sum exactly to the line to the
  fen and each chunk is within a fen of its exact share (inside the platform's 0.06 tolerance);
- the parts' totals sum exactly to the order's totals, each part's words are its own total's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal

from kaipiao.domain.errors import ExceedsInvoiceLimit
from kaipiao.domain.invoice import PricedInvoice, PricedLine, SellerPolicy
from kaipiao.domain.money import PRICE_PLACES, LineMoney, Totals, cumulative_shares, sum_lines
from kaipiao.domain.words import amount_in_words

MAX_PARTS = 100


@dataclass(frozen=True, slots=True)
class PricedPart:
    """One invoice of an order: `part` of `parts` (1-based)."""

    lines: tuple[PricedLine, ...]
    totals: Totals
    total_in_words: str
    part: int
    parts: int


def _weight(line: PricedLine, includes_tax: bool) -> Decimal:
    net = line.net
    return net.gross if includes_tax else net.amount


def _shares(money: LineMoney | None, quantities: list[Decimal]) -> list[LineMoney | None]:
    if money is None:
        return [None for _ in quantities]
    amounts = cumulative_shares(money.amount, quantities)
    taxes = cumulative_shares(money.tax, quantities)
    return [LineMoney(a, t) for a, t in zip(amounts, taxes, strict=True)]


def _chunks(line: PricedLine, quantities: list[Decimal]) -> list[PricedLine]:
    goods = _shares(line.money, quantities)
    discounts = _shares(line.discount, quantities)
    chunks: list[PricedLine] = []
    for quantity, money, discount in zip(quantities, goods, discounts, strict=True):
        assert money is not None
        stated = None
        if discount is not None:
            stated = -(discount.gross if line.request.price_includes_tax else discount.amount)
        request = replace(line.request, quantity=quantity, amount=None, tax=None, discount=stated)
        chunks.append(PricedLine(request, line.rate, money, discount))
    return chunks


def _quantities(quantity: Decimal, chunk: Decimal) -> list[Decimal]:
    whole = int((quantity / chunk).to_integral_value(rounding=ROUND_FLOOR))
    rest = quantity - chunk * whole
    return [chunk] * whole + ([rest] if rest > 0 else [])


def split_line(line: PricedLine, limit: Decimal, includes_tax: bool) -> list[PricedLine]:
    """`line` (alone over `limit`) as chunks of its quantity, each within the limit."""
    quantity = line.request.quantity
    weight = _weight(line, includes_tax)
    exponent = quantity.normalize().as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    while places <= PRICE_PLACES:
        step = Decimal(1).scaleb(-places)
        chunk = (quantity * limit / weight).quantize(step, rounding=ROUND_FLOOR)
        for _ in range(10):  # rounding is a few fen at most: a few steps settle it
            if chunk <= 0 or quantity / chunk > MAX_PARTS:
                break
            pieces = _chunks(line, _quantities(quantity, chunk))
            if all(_weight(piece, includes_tax) <= limit for piece in pieces):
                return pieces
            chunk -= step  # cumulative rounding put a chunk a fen over: one step smaller
        places += 1
    raise ExceedsInvoiceLimit(
        f"line {line.request.name!r} cannot be split into at most {MAX_PARTS} invoices "
        f"within the limit {limit}"
    )


def split_invoice(priced: PricedInvoice, policy: SellerPolicy) -> tuple[PricedPart, ...]:
    """The invoices that issue `priced` within `policy`'s limits (one part when it fits).

    Raises ExceedsInvoiceLimit when it would take more than MAX_PARTS invoices."""
    limit, includes_tax, max_lines = (
        policy.invoice_limit,
        policy.limit_includes_tax,
        policy.max_lines,
    )
    whole = priced.totals.total if includes_tax else priced.totals.total_amount
    count = sum(line.line_count for line in priced.lines)
    if (limit is None or whole <= limit) and count <= max_lines:
        # It fits on one invoice (the common case, on intake's hot path): nothing to pack.
        # Weights are never negative (a discount is at most its line), so no line is over.
        return (PricedPart(priced.lines, priced.totals, priced.total_in_words, 1, 1),)
    items: list[PricedLine] = []
    for line in priced.lines:
        if limit is not None and _weight(line, includes_tax) > limit:
            items.extend(split_line(line, limit, includes_tax))
        else:
            items.append(line)
    bins: list[list[PricedLine]] = []
    loads: list[Decimal] = []
    counts: list[int] = []
    for item in items:
        weight = _weight(item, includes_tax)
        for index in range(len(bins)):
            fits_value = limit is None or loads[index] + weight <= limit
            if fits_value and counts[index] + item.line_count <= max_lines:
                bins[index].append(item)
                loads[index] += weight
                counts[index] += item.line_count
                break
        else:
            bins.append([item])
            loads.append(weight)
            counts.append(item.line_count)
    if len(bins) > MAX_PARTS:
        raise ExceedsInvoiceLimit(
            f"the order needs {len(bins)} invoices within the seller's limits; "
            f"at most {MAX_PARTS} are issued for one order"
        )
    parts = []
    for number, lines in enumerate(bins, start=1):
        totals = sum_lines(line.net for line in lines)
        parts.append(PricedPart(tuple(lines), totals, amount_in_words(totals.total), number,
                                len(bins)))  # fmt: skip
    return tuple(parts)
