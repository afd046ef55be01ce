"""What an issued invoice's files show: one `Sheet` built from the platform's record.

The XML (`sandbox/invoice_xml.py`) and the PDF (`sandbox/invoice_pdf.py`) both render a Sheet,
so the two files of one invoice cannot disagree. A red invoice shows its original's buyer and
type, negative amounts, and the original's number in its remarks, as a 数电 red invoice does
("被红冲蓝字数电发票号码：…").

The QR payload is the 数电 layout `01,{type code},,{number},{amount excl. tax},{YYYYMMDD},,{check}`:
type code 31 for 电子发票（增值税专用发票）, 32 for 电子发票（普通发票）; the invoice code field is
empty (数电 invoices have none). The check field is the sandbox's own: the first four hex digits
of SHA3-256 over "number,amount,date", since the tax bureau's check algorithm is not public.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from kaipiao.domain.words import amount_in_words
from kaipiao.sandbox.records import Record

CHINA = timezone(timedelta(hours=8))
TYPE_CODES = {"special": "31", "normal": "32"}
TITLES = {"special": "电子发票（增值税专用发票）", "normal": "电子发票（普通发票）"}
RED_REMARK = "被红冲蓝字数电发票号码："


@dataclass(frozen=True, slots=True)
class SheetLine:
    name: str
    tax_code: str
    spec: str | None
    unit: str | None
    quantity: str | None
    unit_price: str | None
    amount: Decimal
    tax_rate: str
    tax: Decimal


@dataclass(frozen=True, slots=True)
class Sheet:
    """One issued invoice as its files show it."""

    number: str
    kind: str  # blue | red
    invoice_type: str  # normal | special
    issued_at: datetime  # UTC
    seller_name: str
    seller_tax_id: str
    buyer_name: str
    buyer_tax_id: str | None
    lines: tuple[SheetLine, ...]
    total_amount: Decimal
    total_tax: Decimal
    total: Decimal
    remark: str
    original_number: str | None

    @property
    def title(self) -> str:
        return TITLES.get(self.invoice_type, TITLES["normal"])

    @property
    def type_code(self) -> str:
        return TYPE_CODES.get(self.invoice_type, TYPE_CODES["normal"])

    @property
    def local_time(self) -> datetime:
        """The issue time in China Standard Time, as printed on the invoice."""
        return self.issued_at.astimezone(CHINA)

    @property
    def total_in_words(self) -> str:
        words = amount_in_words(abs(self.total))
        return f"（负数）{words}" if self.total < 0 else words

    @property
    def qr_payload(self) -> str:
        return qr_payload(self.type_code, self.number, self.total_amount, self.local_time)


def qr_payload(type_code: str, number: str, amount: Decimal, issued: datetime) -> str:
    """The 数电 QR payload (see the module docstring for the check field)."""
    day = issued.strftime("%Y%m%d")
    check = hashlib.sha3_256(f"{number},{amount:.2f},{day}".encode()).hexdigest()[:4].upper()
    return f"01,{type_code},,{number},{amount:.2f},{day},,{check}"


def seller_name(tax_id: str) -> str:
    """The sandbox knows sellers only by tax id; real platforms print the registered name."""
    return f"沙箱纳税人{tax_id[-6:]}"


def sheet_of(record: Record) -> Sheet:
    """The Sheet of an issued record; ValueError if it is not issued."""
    if record.status != "issued" or record.invoice_number is None or record.issued_at is None:
        raise ValueError(f"serial {record.serial_no} is not issued")
    lines = tuple(
        SheetLine(
            name=str(line["name"]),
            tax_code=str(line["tax_code"]),
            spec=line.get("spec"),
            unit=line.get("unit"),
            quantity=line.get("quantity"),
            unit_price=line.get("unit_price"),
            amount=Decimal(line["amount"]),
            tax_rate=str(line["tax_rate"]),
            tax=Decimal(line["tax"]),
        )
        for line in record.lines or []
    )
    total_amount = sum((line.amount for line in lines), Decimal("0.00"))
    total_tax = sum((line.tax for line in lines), Decimal("0.00"))
    total = Decimal(record.total)
    if not lines:  # a red invoice for what was left of a partly reversed original
        total_amount, total_tax = total, Decimal("0.00")
    remarks = [record.remark or ""]
    if record.original_invoice_number:
        remarks.insert(0, f"{RED_REMARK}{record.original_invoice_number}")
    buyer = record.buyer or {}
    return Sheet(
        number=record.invoice_number, kind=record.kind, invoice_type=record.invoice_type,
        issued_at=record.issued_at, seller_name=seller_name(record.seller_tax_id),
        seller_tax_id=record.seller_tax_id, buyer_name=str(buyer.get("name") or ""),
        buyer_tax_id=buyer.get("tax_id"), lines=lines, total_amount=total_amount,
        total_tax=total_tax, total=total, remark=" ".join(r for r in remarks if r),
        original_number=record.original_invoice_number,
    )  # fmt: skip
