"""Nuonuo bodies for discount lines and partial red forms, and the Nuonuo-compatible sandbox
front reading them back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from kaipiao.domain.invoice import Buyer
from kaipiao.platform.nuonuo.body import billing_body, red_confirm_body
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine, RedRequest
from kaipiao.sandbox.nuonuo_front import decode_order, decode_red_detail
from kaipiao.sandbox.validation import check_invoice
from tests.factories import BUYER_TAX_ID, SELLER_TAX_ID

D = Decimal
CHAIR = PlatformLine("办公椅", "1060512990000000000", D(3), D("199.99"), "0.13", D("599.97"),
                     D("78.00"))  # fmt: skip
DISCOUNT = PlatformLine("办公椅", "1060512990000000000", None, None, "0.13", D("-59.99"),
                        D("-7.80"), kind="discount")  # fmt: skip
SERVICE = PlatformLine("咨询服务", "3040201990000000000", D(2), D(500), "exempt", D("1000.00"),
                       D("0.00"))  # fmt: skip
INVOICE = PlatformInvoice(
    "A" * 20, "ORD-1", SELLER_TAX_ID, "31", "normal", Buyer("某公司", BUYER_TAX_ID),
    (CHAIR, DISCOUNT, SERVICE), D("1539.98"), D("70.20"), D("1610.18"),
)  # fmt: skip


def test_discounted_and_discount_lines_carry_their_line_property() -> None:
    body = billing_body(INVOICE, now=datetime(2026, 12, 1, tzinfo=UTC), clerk="张三")
    detail = body["order"]["invoiceDetail"]
    assert [d["invoiceLineProperty"] for d in detail] == ["2", "1", "0"]
    assert (detail[1]["num"], detail[1]["price"], detail[1]["taxExcludedAmount"],
            detail[1]["tax"], detail[1]["taxIncludedAmount"]) == ("", "", "-59.99", "-7.80",
                                                                  "-67.79")  # fmt: skip
    decoded, _ = decode_order(body["order"])
    assert [line.kind for line in decoded.lines] == ["goods", "discount", "goods"]
    assert decoded.total == INVOICE.total
    assert check_invoice(decoded) is None


def test_sandbox_refuses_a_discount_beyond_its_line() -> None:
    big = PlatformLine("办公椅", "1060512990000000000", None, None, "0.13", D("-600.00"),
                       D("-78.00"), kind="discount")  # fmt: skip
    bad = replace(INVOICE, lines=(CHAIR, big), total_amount=D("-0.03"), total_tax=D("0.00"),
                  total=D("-0.03"))  # fmt: skip
    rejected = check_invoice(bad)
    assert rejected is not None and rejected.code == "invalid_discount"


def test_partial_red_form_lists_its_lines_by_blue_index() -> None:
    red_line = PlatformLine("办公椅", "1060512990000000000", D(-1), D("179.99333333"), "0.13",
                            D("-179.99"), D("-23.40"), original_index=0)  # fmt: skip
    request = RedRequest("R" * 20, "26312000000000000001", "sales_return", SELLER_TAX_ID,
                         lines=(red_line,), total_amount=D("-179.99"), total_tax=D("-23.40"),
                         total=D("-203.39"))  # fmt: skip
    body = red_confirm_body(request)
    assert body["detail"] == [{
        "blueDetailIndex": "1", "goodsName": "办公椅", "goodsCode": "1060512990000000000",
        "specType": "", "unit": "", "num": "-1", "taxExcludedPrice": "179.99000000",
        "taxExcludedAmount": "-179.99", "taxAmount": "-23.40", "taxRate": "0.13",
        "favouredPolicyFlag": "",
    }]  # fmt: skip
    (decoded,) = decode_red_detail(body["detail"])
    assert (decoded.original_index, decoded.amount, decoded.tax) == (0, D("-179.99"), D("-23.40"))
    whole = RedRequest("R" * 20, "26312000000000000001", "sales_return", SELLER_TAX_ID)
    assert "detail" not in red_confirm_body(whole)
