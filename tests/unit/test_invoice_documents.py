"""The pure parts of issue 19: the sheet, the QR payload, the XML against our XSD, file keys,
the local file store's modes, and SMTP to a denied address."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

import pytest

from kaipiao.platform import smtp
from kaipiao.platform.outbound import OutboundPolicy
from kaipiao.sandbox.invoice_xml import invoice_xml
from kaipiao.sandbox.records import Record
from kaipiao.sandbox.sheet import qr_payload, sheet_of
from kaipiao.store.filestore import LocalFileStore, file_key
from tests.invoice_files import valid_xml

# 2026-12-01 17:30 UTC is 2026-12-02 01:30 in China: the printed date is the local one.
LATE = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)


def record(**changes: object) -> Record:
    base = Record(
        key=1, serial_no="S1", kind="blue", seller_tax_id="91310115MA1K4BXQ2T", region="31",
        order_ref="o", total="113.00", created_at=LATE, status="issued", final_at=LATE,
        invoice_number="26311000000000000007", issued_at=LATE, invoice_type="normal",
        buyer={"name": "上海示例科技有限公司", "tax_id": None},
        lines=[{"name": "*服务*咨询", "tax_code": "3040201010000000000", "spec": None,
                "unit": "次", "quantity": "1", "unit_price": "100.00", "tax_rate": "13%",
                "amount": "100.00", "tax": "13.00"}],
    )  # fmt: skip
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_the_qr_payload_has_the_standard_layout_and_the_local_date() -> None:
    sheet = sheet_of(record())
    fields = sheet.qr_payload.split(",")
    assert fields[:7] == ["01", "32", "", "26311000000000000007", "100.00", "20261202", ""]
    assert len(fields[7]) == 4 and fields[7] == fields[7].upper()
    assert qr_payload("31", sheet.number, Decimal("-100"), sheet.local_time).split(",")[4] == (
        "-100.00"
    )


def test_a_red_sheet_names_its_original_and_writes_negative_words() -> None:
    red = record(kind="red", total="-113.00", original_invoice_number="26311000000000000001",
                 lines=[{**record().lines[0], "amount": "-100.00", "tax": "-13.00"}])  # fmt: skip
    sheet = sheet_of(red)
    assert sheet.remark.startswith("被红冲蓝字数电发票号码：26311000000000000001")
    assert sheet.total_in_words == "（负数）壹佰壹拾叁元整"
    root = valid_xml(invoice_xml(sheet))
    assert root.findtext("EInvoiceData/BasicInformation/TotalTax-includedAmount") == "-113.00"


def test_a_red_sheet_without_lines_still_validates() -> None:
    sheet = sheet_of(record(kind="red", total="-50.00", lines=[],
                            original_invoice_number="26311000000000000001"))  # fmt: skip
    valid_xml(invoice_xml(sheet))


def test_only_issued_records_have_sheets() -> None:
    with pytest.raises(ValueError, match="not issued"):
        sheet_of(record(status="pending", invoice_number=None))


@pytest.mark.parametrize("part", ["..", "a/b", ".hidden", "", "x y"])
def test_file_keys_refuse_anything_but_plain_ids(part: str) -> None:
    with pytest.raises(ValueError, match="unsafe file key"):
        file_key("sel_1", part, "pdf")


def test_the_local_store_writes_private_files_atomically(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path / "files")
    key = file_key("sel_1", "inv_1", "pdf")
    store.put(key, b"one")
    store.put(key, b"two")
    path = tmp_path / "files" / "sel_1" / "inv_1.pdf"
    assert store.get(key) == b"two" and store.get(file_key("sel_1", "inv_2", "pdf")) is None
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["inv_1.pdf"]  # no scratch left


def test_smtp_to_a_denied_address_is_refused_without_connecting() -> None:
    account = smtp.SmtpAccount("127.0.0.1", 25, "none", "a@b.example")
    outcome = smtp.send(account, EmailMessage(), OutboundPolicy(), timeout_s=1)
    assert isinstance(outcome, smtp.Refused) and "not allowed" in outcome.reply
