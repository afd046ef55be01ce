"""Discount lines, splitting over limits and partial reversal: the domain rules, with property
tests over random orders (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaipiao.domain.errors import ExceedsInvoiceLimit, InvalidInvoice
from kaipiao.domain.invoice import (
    Buyer,
    DiscountLineRequest,
    InvoiceRequest,
    InvoiceType,
    LineRequest,
    PricedInvoice,
    SellerPolicy,
    price_invoice,
)
from kaipiao.domain.money import cumulative_shares, sum_lines, within_platform_tolerance
from kaipiao.domain.reversal import InvalidReversal, Reversible, plan_reversal
from kaipiao.domain.split import split_invoice
from kaipiao.domain.words import amount_in_words

CODE = "3040201990000000000"
D = Decimal


def line(quantity: str, price: str, rate: str = "0.13", **more: object) -> LineRequest:
    return LineRequest("货物", CODE, D(quantity), D(price), rate, **more)  # type: ignore[arg-type]


def order(*lines: LineRequest | DiscountLineRequest) -> InvoiceRequest:
    return InvoiceRequest("O-1", InvoiceType.NORMAL, Buyer("某公司"), tuple(lines))


def codes(request: InvoiceRequest) -> list[str]:
    with pytest.raises(InvalidInvoice) as info:
        price_invoice(request, SellerPolicy())
    return [p.code for p in info.value.problems]


# -- discount lines ------------------------------------------------------------------------------
def test_discount_priced_by_the_lines_rules() -> None:
    # Excluding tax: 3 × 199.99 = 599.97, tax 78.00; discount 59.99, its tax round(7.7987) = 7.80.
    priced = price_invoice(order(line("3", "199.99", discount=D("59.99"))), SellerPolicy())
    (goods,) = priced.lines
    assert (goods.money.amount, goods.money.tax) == (D("599.97"), D("78.00"))
    assert goods.discount is not None
    assert (goods.discount.amount, goods.discount.tax) == (D("-59.99"), D("-7.80"))
    assert (priced.totals.total_amount, priced.totals.total_tax) == (D("539.98"), D("70.20"))
    assert priced.total_in_words == amount_in_words(D("610.18")) == "陆佰壹拾元壹角捌分"
    # Including tax: gross 113.00 → 100.00 + 13.00; discount 11.30 → 10.00 + 1.30.
    incl = price_invoice(
        order(line("1", "113", price_includes_tax=True, discount=D("11.30"))), SellerPolicy()
    )
    assert incl.lines[0].discount is not None
    assert (incl.lines[0].discount.amount, incl.lines[0].discount.tax) == (D("-10.00"), D("-1.30"))
    assert incl.totals.total == D("101.70")
    # Exempt: no tax on either line.
    exempt = price_invoice(order(line("1", "50", "exempt", discount=D("5"))), SellerPolicy())
    assert exempt.totals.total == D("45.00") and exempt.totals.total_tax == D("0.00")


def test_a_discount_line_folds_into_its_goods_line() -> None:
    stated = price_invoice(order(line("3", "199.99", discount=D("59.99"))), SellerPolicy())
    folded = price_invoice(
        order(line("3", "199.99"), DiscountLineRequest("货物", CODE, "0.130", D("-59.99"))),
        SellerPolicy(),
    )
    assert folded.lines[0].discount == stated.lines[0].discount
    assert folded.totals == stated.totals


def test_discount_refusals() -> None:
    assert codes(order(line("1", "100", discount=D("100.01")))) == ["discount_exceeds_line"]
    price_invoice(order(line("1", "100", discount=D("100.00"))), SellerPolicy())  # to zero: ok
    assert codes(order(line("1", "100", discount=D("-1")))) == ["invalid_discount"]
    assert codes(order(line("1", "100", discount=D("0.001")))) == ["invalid_discount"]
    other_rate = DiscountLineRequest("货物", CODE, "0.06", D("-1"))
    assert codes(order(line("1", "100"), other_rate)) == ["discount_rate_mismatch"]
    other_name = DiscountLineRequest("别的", CODE, "0.13", D("-1"))
    assert codes(order(line("1", "100"), other_name)) == ["discount_line_mismatch"]
    twice = DiscountLineRequest("货物", CODE, "0.13", D("-1"))
    assert codes(order(line("1", "100", discount=D("1")), twice)) == ["discount_line_mismatch"]
    assert codes(order(twice)) == ["discount_line_mismatch"]
    positive = DiscountLineRequest("货物", CODE, "0.13", D("1"))
    assert codes(order(line("1", "100"), positive)) == ["invalid_discount"]


# -- splitting -----------------------------------------------------------------------------------
RATES = ["0.13", "0.09", "0.06", "0.03", "0", "exempt"]
quantities = st.decimals(min_value=D("0.001"), max_value=D("500"), places=3)
prices = st.decimals(min_value=D("0"), max_value=D("20000"), places=2)


@st.composite
def priced_orders(draw: st.DrawFn) -> PricedInvoice:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        quantity, price = draw(quantities), draw(prices)
        incl = draw(st.booleans())
        request = line(str(quantity), str(price), draw(st.sampled_from(RATES)),
                       price_includes_tax=incl)  # fmt: skip
        value = price_invoice(order(request), SellerPolicy()).lines[0]
        basis = value.money.gross if incl else value.money.amount
        if basis > 0 and draw(st.booleans()):
            share = draw(st.decimals(min_value=D("0.01"), max_value=basis, places=2))
            request = line(str(quantity), str(price), request.tax_rate, price_includes_tax=incl,
                           discount=share)  # fmt: skip
        lines.append(request)
    return price_invoice(order(*lines), SellerPolicy())


policies = st.builds(
    SellerPolicy,
    invoice_limit=st.decimals(min_value=D("500"), max_value=D("100000"), places=2),
    limit_includes_tax=st.booleans(),
    max_lines=st.integers(2, 6),
)


@settings(max_examples=150, deadline=None)
@given(priced_orders(), policies)
def test_split_parts_sum_to_the_order_within_limits_deterministically(
    priced: PricedInvoice, policy: SellerPolicy
) -> None:
    try:
        parts = split_invoice(priced, policy)
    except ExceedsInvoiceLimit:
        return  # more than 100 invoices: refused whole, nothing issued
    assert parts == split_invoice(priced, policy)  # the same order always splits the same way
    assert sum((p.totals.total_amount for p in parts), D(0)) == priced.totals.total_amount
    assert sum((p.totals.total_tax for p in parts), D(0)) == priced.totals.total_tax
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert policy.invoice_limit is not None
    for part in parts:
        assert part.parts == len(parts)
        value = part.totals.total if policy.limit_includes_tax else part.totals.total_amount
        assert value <= policy.invoice_limit
        assert sum(line.line_count for line in part.lines) <= policy.max_lines
        assert part.totals == sum_lines(line.net for line in part.lines)
        assert part.total_in_words == amount_in_words(part.totals.total)
        for piece in part.lines:
            assert within_platform_tolerance(piece.money.amount, piece.money.tax, piece.rate)
            if piece.discount is not None:
                assert -piece.discount.amount <= piece.money.amount
    # A line within the limit is never split: it appears once, unchanged.
    weight = (lambda p: p.net.gross) if policy.limit_includes_tax else (lambda p: p.net.amount)
    issued = [piece for part in parts for piece in part.lines]
    for original in priced.lines:
        if weight(original) <= policy.invoice_limit:
            assert issued.count(original) >= 1


def test_a_line_over_the_limit_is_split_by_quantity_exactly() -> None:
    priced = price_invoice(order(line("10", "1000", discount=D("100"))), SellerPolicy())
    parts = split_invoice(priced, SellerPolicy(invoice_limit=D("3000")))
    assert [[piece.request.quantity for piece in p.lines] for p in parts] == [
        [D(3)],
        [D(3)],
        [D(3)],
        [D(1)],
    ]
    assert [p.totals.total for p in parts] == [D("3356.10")] * 3 + [D("1118.70")]
    assert sum((p.totals.total for p in parts), D(0)) == priced.totals.total == D("11187.00")


def test_one_unit_over_the_limit_is_split_finer() -> None:
    priced = price_invoice(order(line("1", "2500")), SellerPolicy())
    parts = split_invoice(priced, SellerPolicy(invoice_limit=D("1000")))
    assert [p.lines[0].request.quantity for p in parts] == [D("0.4"), D("0.4"), D("0.2")]
    assert [p.totals.total_amount for p in parts] == [D("1000.00"), D("1000.00"), D("500.00")]


def test_cumulative_shares_are_exact() -> None:
    assert cumulative_shares(D("100.00"), [D(1), D(1), D(1)]) == [D("33.33"), D("33.34"),
                                                                  D("33.33")]  # fmt: skip
    assert cumulative_shares(D("0.05"), [D(0), D(2), D(3)]) == [D("0.00"), D("0.02"), D("0.03")]


# -- partial reversal ----------------------------------------------------------------------------
def reversibles(priced: PricedInvoice) -> tuple[Reversible, ...]:
    index, items = 0, []
    for goods in priced.lines:
        net = goods.net
        items.append(Reversible(index, goods.rate, goods.request.unit_price,
                                goods.request.quantity, net.amount, net.tax))  # fmt: skip
        index += goods.line_count
    return tuple(items)


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("lines"), st.integers(0, 11), st.decimals(D("0.001"), D("400"), places=3)
        ),
        st.tuples(st.just("amount"), st.just(0), st.decimals(D("0.01"), D("50000"), places=2)),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(priced_orders(), steps)
def test_partial_reversals_never_exceed_the_original(
    priced: PricedInvoice, plan: list[tuple[str, int, Decimal]]
) -> None:
    items = reversibles(priced)
    reversed_total = D(0)
    codes_seen: set[str] = set()
    for kind, position, value in plan:
        try:
            if kind == "lines":
                target = items[position % len(items)].index
                step = plan_reversal(items, lines=[(target, value)])
            else:
                step = plan_reversal(items, amount=value)
        except InvalidReversal as refused:
            codes_seen.add(refused.code)
            continue
        assert step.totals.total < 0 or step.totals.total == 0
        assert step.total_in_words == amount_in_words(step.totals.total)
        if kind == "amount":
            assert step.totals.total == -value
        reversed_total -= step.totals.total
        items = step.remaining
        for item in items:
            assert item.quantity >= 0 and item.amount >= 0 and item.tax >= 0
        assert reversed_total + step.reversible_total == priced.totals.total
    assert codes_seen <= {"exceeds_reversible", "invalid_amount"}
    if any(item.gross or item.quantity for item in items):
        rest = plan_reversal(items)  # everything left, exactly
        assert reversed_total - rest.totals.total == priced.totals.total
        assert rest.reversible_total == 0
