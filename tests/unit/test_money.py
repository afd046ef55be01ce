from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kaipiao.domain.money import (
    LineMoney,
    decimal_places,
    price_line,
    round_cents,
    sum_lines,
    within_platform_tolerance,
)
from kaipiao.domain.rates import RATES, parse_rate


def test_round_half_up() -> None:
    assert round_cents(Decimal("0.005")) == Decimal("0.01")
    assert round_cents(Decimal("0.015")) == Decimal("0.02")
    assert round_cents(Decimal("-0.005")) == Decimal("-0.01")
    assert round_cents(Decimal("2.675")) == Decimal("2.68")


def test_price_excluding_tax() -> None:
    money = price_line(
        Decimal("3"), Decimal("33.333"), parse_rate("0.13"), price_includes_tax=False
    )
    assert money == LineMoney(Decimal("100.00"), Decimal("13.00"))


def test_price_including_tax_separates_tax() -> None:
    money = price_line(Decimal("1"), Decimal("113"), parse_rate("0.13"), price_includes_tax=True)
    assert money == LineMoney(Decimal("100.00"), Decimal("13.00"))
    money = price_line(Decimal("2"), Decimal("50.005"), parse_rate("0.06"), price_includes_tax=True)
    # gross = round(100.01) = 100.01; amount = round(100.01 / 1.06) = 94.35; tax = 5.66
    assert money == LineMoney(Decimal("94.35"), Decimal("5.66"))


@pytest.mark.parametrize("code", ["exempt", "non_taxable", "0"])
def test_zero_tax_rates(code: str) -> None:
    money = price_line(Decimal("1.5"), Decimal("10"), parse_rate(code), price_includes_tax=True)
    assert money == LineMoney(Decimal("15.00"), Decimal("0.00"))


def test_decimal_places() -> None:
    assert decimal_places(Decimal("1.23456789")) == 8
    assert decimal_places(Decimal("10")) == 0
    assert decimal_places(Decimal("1E+2")) == 0


quantities = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("100000"), places=8)
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("1000000"), places=8)
rates = st.sampled_from(RATES)


@given(quantities, prices, rates, st.booleans())
def test_line_invariants(quantity: Decimal, price: Decimal, rate, includes: bool) -> None:  # type: ignore[no-untyped-def]
    money = price_line(quantity, price, rate, price_includes_tax=includes)
    gross = round_cents(quantity * price)
    assert money.amount == round_cents(money.amount)
    assert money.tax == round_cents(money.tax)
    if includes or rate.zero_tax:
        assert money.amount + money.tax == gross
    else:
        assert money.amount == gross
        assert money.tax == round_cents(gross * rate.rate)
    assert within_platform_tolerance(money.amount, money.tax, rate)
    if rate.zero_tax:
        assert money.tax == 0


@given(st.lists(st.tuples(quantities, prices, rates, st.booleans()), min_size=1, max_size=30))
def test_totals_are_sums_of_lines(specs) -> None:  # type: ignore[no-untyped-def]
    lines = [price_line(q, p, r, price_includes_tax=i) for q, p, r, i in specs]
    totals = sum_lines(lines)
    assert totals.total_amount == sum((m.amount for m in lines), Decimal(0))
    assert totals.total_tax == sum((m.tax for m in lines), Decimal(0))
    assert totals.total == sum((m.gross for m in lines), Decimal(0))
