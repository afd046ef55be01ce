"""The Nuonuo adapter's pure parts: the signature vector, request bodies, and the mapping of every
status code and envelope code to kaipiao's outcomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from kaipiao.domain.invoice import Buyer
from kaipiao.platform.http import Answer
from kaipiao.platform.nuonuo import NuonuoAccount, NuonuoPlatform
from kaipiao.platform.nuonuo.body import (
    billing_body,
    fast_red_body,
    invoice_number,
    red_confirm_body,
)
from kaipiao.platform.nuonuo.codes import CodeTable, Meaning
from kaipiao.platform.nuonuo.signing import signature, verify
from kaipiao.platform.outcomes import (
    Ambiguous,
    Issued,
    NotFound,
    Pending,
    Rejected,
    Throttled,
    Unavailable,
)
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine, RedRequest
from kaipiao.services.secrets import SecretBox, SecretError

NOW = datetime(2026, 11, 26, 2, 30, 5, tzinfo=UTC)  # 10:30:05 in China


def test_the_reference_signature_vector() -> None:
    # ../shared/reference/nuonuo.md: secret `secret`, appkey `app`, senid a×32, nonce 12345678,
    # timestamp 1700000000, body {"name":"中文"}.
    assert signature("secret", "app", "a" * 32, "12345678", "1700000000",
                     '{"name":"中文"}') == "4BzcKzrcoqxPis0W/W3X2ae0uIo="  # fmt: skip


def test_signed_calls_carry_the_headers_and_a_verifiable_signature() -> None:
    platform = NuonuoPlatform(NuonuoAccount("app", "secret", "tok", "91310110666007217T"))
    params, headers, data = platform.signed("nuonuo.OpeMplatform.requestBillingNew", {"a": "中"})
    assert set(params) == {"senid", "nonce", "timestamp", "appkey"} and params["appkey"] == "app"
    assert len(params["senid"]) == 32 and len(params["nonce"]) == 8
    assert headers["method"] == "nuonuo.OpeMplatform.requestBillingNew"
    assert headers["accessToken"] == "tok" and headers["userTax"] == "91310110666007217T"
    assert verify("secret", params, data.decode(), headers["X-Nuonuo-Sign"])
    assert not verify("other", params, data.decode(), headers["X-Nuonuo-Sign"])
    assert "secret" not in repr(platform.account) and "tok" not in repr(platform.account)


def line(rate: str = "0.13", *, inclusive: bool = False, amount: str = "100.00",
         tax: str = "13.00") -> PlatformLine:  # fmt: skip
    return PlatformLine(name="办公用品", tax_code="1060201070000000000", quantity=Decimal("2"),
                        unit_price=Decimal("56.5") if inclusive else Decimal("50"),
                        tax_rate=rate, amount=Decimal(amount), tax=Decimal(tax), unit="个",
                        price_includes_tax=inclusive)  # fmt: skip


def invoice(
    *lines: PlatformLine, kind: str = "normal", email: str | None = None
) -> PlatformInvoice:
    total_amount = sum((x.amount for x in lines), Decimal(0))
    total_tax = sum((x.tax for x in lines), Decimal(0))
    return PlatformInvoice(
        serial_no="0Vc7hyoye2I9iJq9J83Q", order_ref="ORDER-1", seller_tax_id="91310110666007217T",
        seller_region="31", invoice_type=kind,
        buyer=Buyer(name="上海某某科技有限公司", tax_id="91440300MA5G9GK78Y", bank="工行",
                    account="6222", email=email),
        lines=lines, total_amount=total_amount, total_tax=total_tax,
        total=total_amount + total_tax,
    )  # fmt: skip


def test_blue_body_with_a_tax_exclusive_price() -> None:
    order = billing_body(invoice(line()), now=NOW, clerk="张三")["order"]
    assert order["orderNo"] == "0Vc7hyoye2I9iJq9J83Q"  # our serial, 20 characters
    assert order["invoiceDate"] == "2026-11-26 10:30:05"  # China time
    assert order["invoiceType"] == "1" and order["invoiceLine"] == "pc"
    assert order["salerTaxNum"] == "91310110666007217T" and order["clerk"] == "张三"
    assert order["buyerAccount"] == "工行 6222" and order["pushMode"] == "-1"
    assert "callBackUrl" not in order
    [detail] = order["invoiceDetail"]
    assert detail == {
        "goodsName": "办公用品", "goodsCode": "1060201070000000000", "specType": "",
        "unit": "个", "num": "2", "price": "50", "withTaxFlag": "0", "taxRate": "0.13",
        "tax": "13.00", "taxExcludedAmount": "100.00", "taxIncludedAmount": "113.00",
        "invoiceLineProperty": "0",
    }  # fmt: skip


def test_blue_body_with_a_tax_inclusive_price_and_a_special_invoice() -> None:
    body = billing_body(invoice(line(inclusive=True), kind="special", email="a@b.cn"), now=NOW,
                        clerk="k", callback_url="https://erp.example/cb")  # fmt: skip
    order = body["order"]
    assert order["invoiceLine"] == "bs" and order["pushMode"] == "0" and order["email"] == "a@b.cn"
    assert order["callBackUrl"] == "https://erp.example/cb"
    detail = order["invoiceDetail"][0]
    # The price as the caller stated it, tax included; the amounts are ours, to the cent.
    assert (detail["withTaxFlag"], detail["price"]) == ("1", "56.5")
    assert (detail["taxExcludedAmount"], detail["tax"], detail["taxIncludedAmount"]) == (
        "100.00", "13.00", "113.00")  # fmt: skip


@pytest.mark.parametrize(("rate", "flag"), [("exempt", "03"), ("non_taxable", "04")])
def test_exempt_and_non_taxable_lines_are_zero_rate_with_the_policy_flag(
    rate: str, flag: str
) -> None:
    detail = billing_body(invoice(line(rate, tax="0.00")), now=NOW, clerk="k")["order"][
        "invoiceDetail"][0]  # fmt: skip
    assert (detail["taxRate"], detail["favouredPolicyFlag"], detail["tax"]) == ("0", flag, "0.00")
    assert detail["taxIncludedAmount"] == detail["taxExcludedAmount"] == "100.00"


def test_the_provider_rule_holds_for_every_line() -> None:
    lines = (line(), line("0.06", amount="33.33", tax="2.00"), line("exempt", tax="0.00"))
    for d in billing_body(invoice(*lines), now=NOW, clerk="k")["order"]["invoiceDetail"]:
        amount, tax = Decimal(d["taxExcludedAmount"]), Decimal(d["tax"])
        assert abs(amount * Decimal(d["taxRate"]) - tax) <= Decimal("0.06")
        assert amount + tax == Decimal(d["taxIncludedAmount"])


@pytest.mark.parametrize(("reason", "code"), [("sales_return", "1"), ("invoicing_error", "2"),
                                              ("service_stopped", "3"), ("sales_discount", "4")])  # fmt: skip
def test_red_bodies_map_our_reasons_to_nuonuo_numbers(reason: str, code: str) -> None:
    request = RedRequest("R" * 20, "26312000000000000001", reason, "91310110666007217T")
    form = red_confirm_body(request)
    assert form == {"billId": "R" * 20, "blueInvoiceNumber": "26312000000000000001",
                    "redReason": code, "taxNum": "91310110666007217T", "applySource": "0"}  # fmt: skip
    assert fast_red_body(request, "B1", "U1") == {
        "orderNo": "R" * 20, "taxNum": "91310110666007217T",
        "invoiceNumber": "26312000000000000001", "billNo": "B1", "billUuid": "U1"}  # fmt: skip


def platform() -> NuonuoPlatform:
    return NuonuoPlatform(NuonuoAccount("app", "s", "t", "91310110666007217T"),
                          clock=lambda: NOW)  # fmt: skip


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("2", Issued("26312000000000000001", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))),
        ("20", Pending(poll_after_s=2.0)),
        ("21", Pending(poll_after_s=2.0)),
        ("22", Rejected("nuonuo_status_22", "税号不存在")),
        ("24", Rejected("nuonuo_status_24", "税号不存在")),
        ("3", Rejected("nuonuo_status_3", "税号不存在")),
        ("31", Rejected("nuonuo_status_31", "税号不存在")),
    ],
)
def test_every_status_code_maps_to_an_outcome(status: str, expected: object) -> None:
    item: dict[str, Any] = {"status": status, "invoiceTime": 1700000000000,
                            "allElectronicInvoiceNumber": "26312000000000000001",
                            "failCause": "税号不存在"}  # fmt: skip
    assert platform()._query_outcome([item]) == expected


def test_unknown_status_empty_answers_and_both_number_spellings() -> None:
    p = platform()
    assert p._query_outcome([]) == NotFound()
    assert isinstance(p._query_outcome([{"status": "99"}]), Unavailable)
    assert invoice_number({"allElectronicInvoiceNumbe": "N1"}) == "N1"
    assert invoice_number({"allElectronicInvoiceNumber": "N2"}) == "N2"
    # Issued twice under one order number (a provider without dedup): the issued entry wins.
    both = [{"status": "22"}, {"status": "2", "allElectronicInvoiceNumbe": "N3",
                               "invoiceTime": "1700000000000"}]  # fmt: skip
    assert p._query_outcome(both) == Issued("N3", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))


@pytest.mark.parametrize(
    ("code", "meaning"),
    [("E0000", Meaning.OK), ("E9106", Meaning.DUPLICATE), ("6783", Meaning.DUPLICATE),
     ("6655", Meaning.DUPLICATE), ("sign_invalid", Meaning.AUTH), ("token_invalid", Meaning.AUTH),
     ("system_busy", Meaning.RETRY), ("E9999", Meaning.REFUSED)],
)  # fmt: skip
def test_envelope_codes(code: str, meaning: Meaning) -> None:
    assert CodeTable().meaning(code) is meaning
    assert CodeTable(duplicate=frozenset({"X1"})).meaning("X1") is Meaning.DUPLICATE


def reply(code: str) -> Answer:
    return Answer(200, {}, {"code": code, "describe": "说明", "result": {}})


def test_envelope_codes_become_issue_outcomes() -> None:
    p = platform()
    assert isinstance(p._meaning(p._reply(reply("E9106"))), Ambiguous)  # type: ignore[arg-type]
    assert isinstance(p._meaning(p._reply(reply("sign_invalid"))), Unavailable)  # type: ignore[arg-type]
    assert isinstance(p._meaning(p._reply(reply("system_busy"))), Unavailable)  # type: ignore[arg-type]
    assert p._meaning(p._reply(reply("E1234"))) == Rejected("nuonuo_E1234", "说明")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "kind"), [(429, Throttled), (503, Unavailable), (500, Ambiguous), (502, Ambiguous)]
)
def test_answers_without_an_envelope(status: int, kind: type) -> None:
    answer = Answer(status, {"Retry-After": "3"}, None)
    assert NuonuoPlatform._reply(answer) is None
    assert isinstance(NuonuoPlatform._http_outcome(answer), kind)


def test_secrets_are_encrypted_or_referenced_never_stored_in_the_clear(tmp_path: Any) -> None:
    box = SecretBox.load_or_create(tmp_path / "secrets.key")
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
    sealed = box.seal("s3cret")
    assert sealed.startswith("enc:") and "s3cret" not in sealed
    assert box.open(sealed, {}, "the secret") == "s3cret"
    assert box.seal("env:NUONUO_SECRET") == "env:NUONUO_SECRET"
    assert box.open("env:NUONUO_SECRET", {"NUONUO_SECRET": "x"}, "the secret") == "x"
    with pytest.raises(SecretError, match="NUONUO_SECRET is not set"):
        box.open("env:NUONUO_SECRET", {}, "the secret")
    other = SecretBox.load_or_create(tmp_path / "other.key")
    with pytest.raises(SecretError, match="does not decrypt") as caught:
        other.open(sealed, {}, "the app secret")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(SecretError):
        box.seal("env:not a name")
    assert json.dumps(sealed)  # storable as is
