from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from kaipiao.domain.codes import InvoiceNumber
from kaipiao.platform.outcomes import Duplicate, Issued, NotFound, Pending, Rejected
from kaipiao.platform.protocol import RedRequest
from kaipiao.sandbox.faults import build_faults
from kaipiao.sandbox.state import SandboxState
from tests.factories import SELLER_TAX_ID, platform_invoice

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_numbers_follow_the_shudian_shape_per_region() -> None:
    state = SandboxState()
    a = state.issue(platform_invoice(region="44"), NOW)
    b = state.issue(platform_invoice(region="44"), NOW)
    c = state.issue(platform_invoice(region=None), NOW)
    assert isinstance(a, Issued) and isinstance(b, Issued) and isinstance(c, Issued)
    assert InvoiceNumber.parse(a.invoice_number) == InvoiceNumber(26, "44", 1, 1)
    assert InvoiceNumber.parse(b.invoice_number).sequence == 2
    assert InvoiceNumber.parse(c.invoice_number).province == "31"


def test_dedup_by_serial_and_ground_truth_when_off() -> None:
    state = SandboxState()
    invoice = platform_invoice()
    first = state.issue(invoice, NOW)
    assert isinstance(first, Issued)
    assert state.issue(invoice, NOW) == Duplicate(first.invoice_number, NOW)
    assert state.stats(NOW)["duplicates"] == {"by_serial": 0, "by_order": 0}
    state.faults = build_faults({"dedup": False})
    assert isinstance(state.issue(invoice, NOW), Issued)
    assert isinstance(state.issue(replace(invoice, serial_no="OTHER1"), NOW), Issued)
    assert state.stats(NOW)["duplicates"] == {"by_serial": 1, "by_order": 2}
    assert state.stats(NOW)["invoices_issued"] == 3


def test_asynchronous_issuance_settles_later_and_may_fail() -> None:
    state = SandboxState(seed=5, faults=build_faults({"async_issue": True, "async_delay_s": 10}))
    invoice = platform_invoice()
    assert state.issue(invoice, NOW) == Pending(poll_after_s=10.0)
    assert state.query(invoice.serial_no, NOW + timedelta(seconds=4)) == Pending(poll_after_s=6.0)
    assert state.issue(invoice, NOW + timedelta(seconds=5)) == Pending(poll_after_s=5.0)
    settled = state.query(invoice.serial_no, NOW + timedelta(seconds=10))
    assert isinstance(settled, Issued) and settled.issued_at == NOW + timedelta(seconds=10)
    state.faults = build_faults({"async_issue": True, "async_fail_rate": 1.0, "async_delay_s": 1})
    failing = platform_invoice()
    state.issue(failing, NOW)
    assert state.query(failing.serial_no, NOW + timedelta(seconds=2)) == Rejected(
        "platform_failed", "the platform failed to issue it"
    )
    assert state.stats(NOW + timedelta(seconds=2))["failed"] == 1


def test_red_letter_rules() -> None:
    state = SandboxState()
    blue = state.issue(platform_invoice(), NOW)
    assert isinstance(blue, Issued)
    red = RedRequest("RED1", blue.invoice_number, "开票有误", SELLER_TAX_ID)
    issued = state.issue_red(red, NOW)
    assert isinstance(issued, Issued)
    record = state.record_for("RED1")
    assert record is not None and record.total == "-106.00" and record.kind == "red"
    again = state.issue_red(replace(red, serial_no="RED2"), NOW)
    assert isinstance(again, Rejected) and again.code == "already_reversed"
    unknown = state.issue_red(replace(red, serial_no="RED3", original_invoice_number="1" * 20), NOW)
    assert isinstance(unknown, Rejected) and unknown.code == "original_not_found"
    foreign = state.issue_red(
        replace(red, serial_no="RED4", seller_tax_id="91110108551385082Q"), NOW
    )
    assert isinstance(foreign, Rejected) and foreign.code == "original_not_found"
    assert isinstance(state.issue_red(red, NOW), Duplicate)


def test_validation_rejects_what_a_platform_rejects() -> None:
    state = SandboxState()
    bad_tax = platform_invoice()
    bad_tax = replace(bad_tax, lines=(replace(bad_tax.lines[0], tax=Decimal("7.00")),))
    outcome = state.issue(bad_tax, NOW)
    assert isinstance(outcome, Rejected) and outcome.code == "tax_mismatch"
    outcome = state.issue(replace(platform_invoice(), total=Decimal("1")), NOW)
    assert isinstance(outcome, Rejected) and outcome.code == "total_mismatch"
    outcome = state.issue(replace(platform_invoice(), seller_tax_id="91310110666007217U"), NOW)
    assert isinstance(outcome, Rejected) and outcome.code == "invalid_buyer_tax_id"
    outcome = state.issue(platform_invoice(lines=2001), NOW)
    assert isinstance(outcome, Rejected) and outcome.code == "too_many_lines"
    assert state.query("nothing", NOW) == NotFound()


def test_quota_is_a_token_bucket_per_seller() -> None:
    state = SandboxState(faults=build_faults({"quota_per_s": 2, "quota_burst": 2}))
    assert state.throttle("A", NOW) is None
    assert state.throttle("A", NOW) is None
    wait = state.throttle("A", NOW)
    assert wait is not None and abs(wait - 0.5) < 1e-9
    assert state.throttle("B", NOW) is None
    assert state.throttle("A", NOW + timedelta(seconds=0.5)) is None


def test_listing_pages_by_seller_and_time() -> None:
    state = SandboxState()
    for i in range(150):
        state.issue(platform_invoice(), NOW + timedelta(seconds=i))
    state.issue(platform_invoice(seller_tax_id="91110108551385082Q"), NOW)
    first = state.list_issued(SELLER_TAX_ID, NOW, NOW + timedelta(hours=1), 1, NOW)
    second = state.list_issued(SELLER_TAX_ID, NOW, NOW + timedelta(hours=1), 2, NOW)
    assert len(first.invoices) == 100 and first.next_page == 2
    assert len(second.invoices) == 50 and second.next_page is None
    window = state.list_issued(SELLER_TAX_ID, NOW, NOW + timedelta(seconds=10), 1, NOW)
    assert len(window.invoices) == 10


def test_journal_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.jsonl"
    state = SandboxState(journal_path=path)
    blue = state.issue(platform_invoice(serial_no="KEEP1", region="44"), NOW)
    state.faults = build_faults({"async_issue": True, "async_delay_s": 5})
    state.issue(platform_invoice(serial_no="LATER1"), NOW)
    state.close()
    with path.open("a") as torn:
        torn.write('{"key": 99, "serial')  # a crash mid-write leaves a torn line
    restarted = SandboxState(journal_path=path)
    assert restarted.query("KEEP1", NOW) == blue
    assert isinstance(restarted.query("LATER1", NOW + timedelta(seconds=5)), Issued)
    following = restarted.issue(platform_invoice(region="44"), NOW)
    assert isinstance(following, Issued) and following.invoice_number.endswith("2")
    assert isinstance(restarted.issue(platform_invoice(serial_no="KEEP1"), NOW), Duplicate)
    restarted.close()
    again = SandboxState(journal_path=path)
    assert isinstance(again.query("LATER1", NOW), Issued)
    again.reset()
    assert not path.exists() or path.read_text() == ""
    assert again.query("KEEP1", NOW) == NotFound()
    again.close()
