from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kaipiao.domain.codes import InvoiceNumber, is_serial_no, is_tax_code, new_serial_no
from kaipiao.domain.errors import IllegalTransition, InvalidRate
from kaipiao.domain.lifecycle import TERMINAL, TRANSITIONS, Status, ensure_transition
from kaipiao.domain.rates import parse_rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [("0.13", "0.13"), ("0.130", "0.13"), (" 0.09 ", "0.09"), ("0", "0"), ("0.00", "0")],
)
def test_parse_numeric_rates(text: str, rate: str) -> None:
    assert parse_rate(text).rate == Decimal(rate)


def test_named_rates_are_zero_and_distinct() -> None:
    assert parse_rate("exempt").rate == 0
    assert parse_rate("exempt").code == "exempt"
    assert parse_rate("non_taxable").code == "non_taxable"
    assert parse_rate("0").code == "0"


@pytest.mark.parametrize("bad", ["0.16", "13%", "abc", "NaN", "Infinity", "-0.13", ""])
def test_unknown_rates(bad: str) -> None:
    with pytest.raises(InvalidRate) as info:
        parse_rate(bad)
    assert info.value.code == "invalid_tax_rate"


def test_tax_code_is_19_digits() -> None:
    assert is_tax_code("1010101010000000000")
    assert not is_tax_code("101010101000000000")
    assert not is_tax_code("10101010100000000000")
    assert not is_tax_code("101010101000000000a")


def test_invoice_number_round_trip() -> None:
    number = InvoiceNumber.parse("26310000000000000042")
    assert number == InvoiceNumber(26, "31", 0, 42)
    assert str(number) == "26310000000000000042"
    with pytest.raises(ValueError, match="20-digit"):
        InvoiceNumber.parse("2631000000000000004")
    with pytest.raises(ValueError, match="province"):
        InvoiceNumber.parse("26990000000000000042")


def test_serial_numbers_fit_providers_and_are_unique() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    serials = {new_serial_no(now) for _ in range(10_000)}
    assert len(serials) == 10_000
    assert all(is_serial_no(s) and len(s) == 20 for s in serials)
    later = new_serial_no(now + timedelta(milliseconds=1))
    assert later[:8] > min(serials)[:8]
    assert not is_serial_no("abc-def")
    assert not is_serial_no("a" * 21)


def test_terminal_statuses_have_no_way_out_but_reversal_or_attention() -> None:
    for status in TERMINAL:
        assert TRANSITIONS[status] <= {Status.REVERSING, Status.ATTENTION}
    assert set(TRANSITIONS) == set(Status)


def test_legal_and_illegal_transitions() -> None:
    ensure_transition(Status.QUEUED, Status.ISSUING)
    ensure_transition(Status.ISSUING, Status.ISSUED)
    ensure_transition(Status.ISSUED, Status.REVERSING)
    ensure_transition(Status.ATTENTION, Status.QUEUED)
    for source, target in [
        (Status.CANCELLED, Status.QUEUED),
        (Status.ISSUED, Status.CANCELLED),
        (Status.REVERSED, Status.ISSUED),
        (Status.ISSUING, Status.CANCELLED),
    ]:
        with pytest.raises(IllegalTransition) as info:
            ensure_transition(source, target)
        assert info.value.code == "illegal_transition"


def test_serial_floor_splits_serials_by_time() -> None:
    from datetime import UTC, datetime, timedelta

    from kaipiao.domain.codes import new_serial_no, serial_floor

    moment = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    floor = serial_floor(moment)
    assert new_serial_no(moment - timedelta(milliseconds=1)) < floor
    assert floor <= new_serial_no(moment) < new_serial_no(moment + timedelta(days=400))
