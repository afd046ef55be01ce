from dataclasses import replace
from decimal import Decimal

import pytest

from kaipiao.domain.credit_code import CheckMode
from kaipiao.domain.errors import ExceedsInvoiceLimit, InvalidInvoice
from kaipiao.domain.invoice import (
    MAX_LINES,
    Buyer,
    InvoiceRequest,
    InvoiceType,
    LineRequest,
    SellerPolicy,
    price_invoice,
    reverse_lines,
)
from kaipiao.domain.split import split_invoice

LINE = LineRequest(
    name="咨询服务",
    tax_code="3040201990000000000",
    quantity=Decimal("2"),
    unit_price=Decimal("500"),
    tax_rate="0.06",
)
REQUEST = InvoiceRequest(
    order_id="ORD-1",
    invoice_type=InvoiceType.SPECIAL,
    buyer=Buyer(name="上海某某科技有限公司", tax_id="91310110666007217T"),
    lines=(LINE, replace(LINE, tax_rate="exempt", unit_price=Decimal("10.5"))),
)


def problems(
    request: InvoiceRequest, policy: SellerPolicy | None = None
) -> list[tuple[str, tuple]]:  # type: ignore[type-arg]
    with pytest.raises(InvalidInvoice) as info:
        price_invoice(request, policy or SellerPolicy())
    return [(p.code, p.loc) for p in info.value.problems]


def test_prices_a_valid_invoice() -> None:
    priced = price_invoice(REQUEST, SellerPolicy())
    assert [line.money.amount for line in priced.lines] == [Decimal("1000.00"), Decimal("21.00")]
    assert [line.money.tax for line in priced.lines] == [Decimal("60.00"), Decimal("0.00")]
    assert priced.totals.total_amount == Decimal("1021.00")
    assert priced.totals.total_tax == Decimal("60.00")
    assert priced.totals.total == Decimal("1081.00")
    assert priced.total_in_words == "壹仟零捌拾壹元整"


def test_stated_amounts_must_match_to_the_cent() -> None:
    ok = replace(REQUEST, lines=(replace(LINE, amount=Decimal("1000.00"), tax=Decimal("60")),))
    price_invoice(ok, SellerPolicy())
    off = replace(REQUEST, lines=(replace(LINE, tax=Decimal("60.01")),))
    assert problems(off) == [("tax_mismatch", ("lines", 0, "tax"))]
    off = replace(REQUEST, lines=(replace(LINE, amount=Decimal("999.99")),))
    assert problems(off) == [("tax_mismatch", ("lines", 0, "amount"))]


def test_special_invoice_needs_buyer_tax_id() -> None:
    request = replace(REQUEST, buyer=Buyer(name="某公司"))
    assert problems(request) == [("invalid_buyer_tax_id", ("buyer", "tax_id"))]
    price_invoice(replace(request, invoice_type=InvoiceType.NORMAL), SellerPolicy())


def test_bad_tax_id_is_rejected_or_warned_by_policy() -> None:
    request = replace(REQUEST, buyer=Buyer(name="某公司", tax_id="91310110666007217U"))
    assert problems(request) == [("invalid_buyer_tax_id", ("buyer", "tax_id"))]
    priced = price_invoice(request, SellerPolicy(tax_id_check=CheckMode.WARN))
    assert priced.warnings
    assert "expected 'T'" in priced.warnings[0]


def test_collects_every_problem_with_location() -> None:
    bad_line = replace(
        LINE, tax_code="123", quantity=Decimal("0"), unit_price=Decimal("1.123456789")
    )
    request = replace(
        REQUEST,
        order_id="",
        buyer=Buyer(name=" ", tax_id="91310110666007217T"),
        lines=(bad_line, replace(LINE, tax_rate="0.16")),
    )
    assert problems(request) == [
        ("invalid_order_id", ("order_id",)),
        ("invalid_buyer", ("buyer", "name")),
        ("invalid_tax_code", ("lines", 0, "tax_code")),
        ("invalid_amount", ("lines", 0, "unit_price")),
        ("invalid_amount", ("lines", 0, "quantity")),
        ("invalid_tax_rate", ("lines", 1, "tax_rate")),
    ]


def test_line_count_limits() -> None:
    assert problems(replace(REQUEST, lines=())) == [("no_lines", ("lines",))]
    price_invoice(replace(REQUEST, lines=(LINE,) * MAX_LINES), SellerPolicy())
    too_many = replace(REQUEST, lines=(LINE,) * (MAX_LINES + 1))
    assert problems(too_many) == [("too_many_lines", ("lines",))]


def test_order_id_length() -> None:
    price_invoice(replace(REQUEST, order_id="x" * 64), SellerPolicy())
    assert problems(replace(REQUEST, order_id="x" * 65))[0][0] == "invalid_order_id"


def test_seller_invoice_limit_splits_instead_of_refusing() -> None:
    priced = price_invoice(REQUEST, SellerPolicy())
    # The limit is on the total excluding tax (1021.00 here): at it, one invoice.
    assert len(split_invoice(priced, SellerPolicy(invoice_limit=Decimal("1021.00")))) == 1
    parts = split_invoice(priced, SellerPolicy(invoice_limit=Decimal("1020.99")))
    assert [(p.part, p.parts, p.totals.total) for p in parts] == [
        (1, 2, Decimal("1060.00")),
        (2, 2, Decimal("21.00")),
    ]
    # Including tax, as configured: 1081.00 fits, a fen less does not.
    including = SellerPolicy(invoice_limit=Decimal("1081.00"), limit_includes_tax=True)
    assert len(split_invoice(priced, including)) == 1
    including = replace(including, invoice_limit=Decimal("1080.99"))
    assert len(split_invoice(priced, including)) == 2
    with pytest.raises(ExceedsInvoiceLimit) as info:  # more than 100 invoices for one order
        split_invoice(priced, SellerPolicy(invoice_limit=Decimal("5")))
    assert info.value.code == "exceeds_invoice_limit"


def test_reverse_lines_negate_money_and_quantity() -> None:
    priced = price_invoice(REQUEST, SellerPolicy())
    red = reverse_lines(priced.lines)
    assert [line.money.amount for line in red] == [Decimal("-1000.00"), Decimal("-21.00")]
    assert [line.request.quantity for line in red] == [Decimal("-2"), Decimal("-2")]
    assert [line.request.unit_price for line in red] == [Decimal("500"), Decimal("10.5")]


def test_amounts_beyond_any_real_invoice_are_refused_not_crashed() -> None:
    huge = replace(LINE, quantity=Decimal("506827943093314727474950196094658"))
    assert problems(replace(REQUEST, lines=(huge,))) == [
        ("invalid_amount", ("lines", 0, "quantity"))
    ]
    big = replace(LINE, quantity=Decimal("999999999999"), unit_price=Decimal("999999999999"))
    assert problems(replace(REQUEST, lines=(big,))) == [("invalid_amount", ("lines",))]


def test_largest_line_is_computed_exactly() -> None:
    line = replace(
        LINE, quantity=Decimal("999.99999999"), unit_price=Decimal("999999.99999999"),
        tax_rate="0.13",
    )  # fmt: skip
    priced = price_invoice(replace(REQUEST, lines=(line,)), SellerPolicy())
    # 999.99999999 × 999999.99999999 = 999999999.98999000000001 → 999999999.99
    assert priced.lines[0].money.amount == Decimal("999999999.99")
    assert priced.lines[0].money.tax == Decimal("130000000.00")
