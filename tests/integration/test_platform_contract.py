"""One contract, two platforms: the in-memory FakePlatform and the real sandbox over HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from kaipiao.domain.codes import InvoiceNumber
from kaipiao.domain.words import amount_in_words
from kaipiao.platform.outcomes import Duplicate, Issued, NotFound, Pending, Rejected
from kaipiao.platform.protocol import InvoiceFiles, ListedPage, RedRequest
from kaipiao.sandbox.sheet import CHINA, qr_payload
from tests.factories import SELLER_TAX_ID, platform_invoice
from tests.integration.conftest import Harness
from tests.invoice_files import pdf_fonts_embedded, pdf_text, qr_codes, valid_xml


async def test_issue_then_duplicate_then_query(harness: Harness) -> None:
    invoice = platform_invoice(region="44")
    issued = await harness.platform.issue(invoice)
    assert isinstance(issued, Issued)
    assert InvoiceNumber.parse(issued.invoice_number).province == "44"
    again = await harness.platform.issue(invoice)
    assert isinstance(again, Duplicate) and again.invoice_number == issued.invoice_number
    assert await harness.platform.query(invoice.serial_no) == issued
    assert await harness.platform.query("NEVERSENT1") == NotFound()
    stats = await harness.stats()
    assert stats["invoices_issued"] == 1
    assert stats["duplicates"] == {"by_serial": 0, "by_order": 0}


async def test_validation_failures_are_permanent_rejections(harness: Harness) -> None:
    invoice = platform_invoice()
    wrong = replace(invoice, lines=(replace(invoice.lines[0], tax=Decimal("9.99")),))
    outcome = await harness.platform.issue(wrong)
    assert isinstance(outcome, Rejected) and outcome.code == "tax_mismatch"
    outcome = await harness.platform.issue(replace(invoice, serial_no="bad-serial"))
    assert isinstance(outcome, Rejected)
    outcome = await harness.platform.issue(platform_invoice(lines=2001))
    assert isinstance(outcome, Rejected) and outcome.code == "too_many_lines"
    assert (await harness.stats())["invoices_issued"] == 0


async def test_red_letter_invoice(harness: Harness) -> None:
    blue = await harness.platform.issue(platform_invoice())
    assert isinstance(blue, Issued)
    request = RedRequest("RED0001", blue.invoice_number, "开票有误", SELLER_TAX_ID, "31")
    red = await harness.platform.issue_red(request)
    assert isinstance(red, Issued) and red.invoice_number != blue.invoice_number
    assert isinstance(await harness.platform.issue_red(request), Duplicate)
    second = await harness.platform.issue_red(replace(request, serial_no="RED0002"))
    assert isinstance(second, Rejected) and second.code == "already_reversed"
    unknown = await harness.platform.issue_red(
        replace(request, serial_no="RED0003", original_invoice_number="26310000000000099999")
    )
    assert isinstance(unknown, Rejected) and unknown.code == "original_not_found"
    assert (await harness.stats())["red_issued"] == 1


async def test_listing_for_reconciliation(harness: Harness) -> None:
    for _ in range(120):
        assert isinstance(await harness.platform.issue(platform_invoice()), Issued)
    await harness.platform.issue(platform_invoice(seller_tax_id="91110108551385082Q"))
    start = harness.now - timedelta(days=1) if harness.fake else None
    from datetime import UTC, datetime

    start = start or datetime.now(UTC) - timedelta(hours=1)
    end = start + timedelta(days=2)
    first = await harness.platform.list_issued(SELLER_TAX_ID, start, end)
    assert isinstance(first, ListedPage) and len(first.invoices) == 100 and first.next_page == 2
    second = await harness.platform.list_issued(SELLER_TAX_ID, start, end, page=2)
    assert isinstance(second, ListedPage) and len(second.invoices) == 20
    assert second.next_page is None
    serials = {i.serial_no for i in first.invoices + second.invoices}
    assert len(serials) == 120
    assert all(i.kind == "blue" and i.total == Decimal("106.00") for i in second.invoices)


async def test_asynchronous_platform_answers_pending_then_final(harness: Harness) -> None:
    await harness.set_faults({"async_issue": True, "async_delay_s": 0.3})
    invoice = platform_invoice()
    assert isinstance(await harness.platform.issue(invoice), Pending)
    assert isinstance(await harness.platform.query(invoice.serial_no), Pending)
    await harness.advance(0.4)
    final = await harness.platform.query(invoice.serial_no)
    assert isinstance(final, Issued)
    assert await harness.platform.issue(invoice) == Duplicate(final.invoice_number, final.issued_at)


async def test_asynchronous_failure_is_final_and_resubmittable(harness: Harness) -> None:
    await harness.set_faults({"async_issue": True, "async_delay_s": 0.2, "async_fail_rate": 1.0})
    invoice = platform_invoice()
    assert isinstance(await harness.platform.issue(invoice), Pending)
    await harness.advance(0.3)
    failed = await harness.platform.query(invoice.serial_no)
    assert isinstance(failed, Rejected) and failed.code == "platform_failed"
    await harness.set_faults({"async_issue": False, "async_fail_rate": 0.0})
    assert isinstance(await harness.platform.issue(invoice), Issued)


async def test_dedup_off_lets_a_careless_client_double_issue(harness: Harness) -> None:
    await harness.set_faults({"dedup": False})
    invoice = platform_invoice()
    assert isinstance(await harness.platform.issue(invoice), Issued)
    assert isinstance(await harness.platform.issue(invoice), Issued)
    stats = await harness.stats()
    assert stats["duplicates"] == {"by_serial": 1, "by_order": 1}


async def test_issued_invoices_have_their_files(harness: Harness) -> None:
    """Blue and red: the PDF shows number, buyer, total and words with an embedded font, its QR
    decodes to the 数电 payload, the XML validates and its numbers are the invoice's; a red
    invoice's files carry the original's number."""
    invoice = platform_invoice()
    blue = await harness.platform.issue(invoice)
    assert isinstance(blue, Issued)
    missing = await harness.platform.fetch_files(
        "26310000000000099999", serial_no="NEVERSENT1", seller_tax_id=SELLER_TAX_ID
    )
    assert missing == NotFound()
    red_request = RedRequest("RED0001", blue.invoice_number, "开票有误", SELLER_TAX_ID, "31")
    red = await harness.platform.issue_red(red_request)
    assert isinstance(red, Issued)
    for issued, serial, total in ((blue, invoice.serial_no, invoice.total),
                                  (red, "RED0001", -invoice.total)):  # fmt: skip
        got = await harness.platform.fetch_files(
            issued.invoice_number, serial_no=serial, seller_tax_id=SELLER_TAX_ID
        )
        assert isinstance(got, InvoiceFiles)
        files = {f.kind: f.content for f in got.files}
        text = pdf_text(files["pdf"])
        words = amount_in_words(abs(total))
        for shown in (issued.invoice_number, invoice.buyer.name, f"{total:.2f}", words):
            assert shown in text, shown
        assert pdf_fonts_embedded(files["pdf"])
        day = issued.issued_at.astimezone(CHINA).strftime("%Y%m%d")
        amount = sum((line.amount for line in invoice.lines), Decimal(0))
        amount = amount if serial == invoice.serial_no else -amount
        payload = qr_payload(
            "32", issued.invoice_number, amount, issued.issued_at.astimezone(CHINA)
        )
        assert payload.startswith(f"01,32,,{issued.invoice_number},{amount:.2f},{day},,")
        assert qr_codes(files["pdf"]) == [payload]
        root = valid_xml(files["xml"])
        assert root.findtext("TaxSupervisionInfo/InvoiceNumber") == issued.invoice_number
        basic = root.find("EInvoiceData/BasicInformation")
        assert basic is not None
        assert Decimal(basic.findtext("TotalTax-includedAmount") or "") == total
        assert Decimal(basic.findtext("TotalAmWithoutTax") or "") == amount
        if serial == "RED0001":
            assert blue.invoice_number in text
            assert blue.invoice_number in (
                root.findtext("EInvoiceData/AdditionalInformation/Remark") or ""
            )
