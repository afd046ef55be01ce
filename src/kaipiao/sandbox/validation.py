"""The checks a tax platform makes on a submitted invoice, built from kaipiao's own domain rules.

A platform checks independently of its clients: kaipiao validates at intake, and the sandbox checks
again, so a client bug shows as a permanent `Rejected`, as it would on the real platform.
"""

from __future__ import annotations

from decimal import Decimal

from kaipiao.domain.codes import is_serial_no, is_tax_code
from kaipiao.domain.credit_code import validate_tax_id
from kaipiao.domain.errors import DomainError
from kaipiao.domain.invoice import MAX_LINES, InvoiceType
from kaipiao.domain.money import within_platform_tolerance
from kaipiao.domain.rates import parse_rate
from kaipiao.platform.outcomes import Rejected
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine


def check_invoice(invoice: PlatformInvoice) -> Rejected | None:
    """None if the platform accepts `invoice`, else the rejection it answers with."""
    if not is_serial_no(invoice.serial_no):
        return Rejected("invalid_serial_no", "serial_no must be 1–20 letters or digits")
    if invoice.invoice_type not in {t.value for t in InvoiceType}:
        return Rejected("invalid_invoice_type", f"unknown invoice type {invoice.invoice_type!r}")
    try:
        validate_tax_id(invoice.seller_tax_id)
        if invoice.buyer.tax_id:
            validate_tax_id(invoice.buyer.tax_id)
    except DomainError as exc:
        return Rejected(exc.code, exc.message)
    if invoice.invoice_type == InvoiceType.SPECIAL and not invoice.buyer.tax_id:
        return Rejected("invalid_buyer_tax_id", "a special invoice needs the buyer's tax id")
    if not 1 <= len(invoice.lines) <= MAX_LINES:
        return Rejected("too_many_lines", f"an invoice has 1 to {MAX_LINES} lines")
    amount = Decimal(0)
    tax = Decimal(0)
    for index, line in enumerate(invoice.lines):
        refused = _check_kind(invoice.lines, index)
        if refused is not None:
            return refused
        if not is_tax_code(line.tax_code):
            return Rejected("invalid_tax_code", f"line {index}: tax_code must be 19 digits")
        try:
            rate = parse_rate(line.tax_rate)
        except DomainError as exc:
            return Rejected(exc.code, f"line {index}: {exc.message}")
        if not within_platform_tolerance(line.amount, line.tax, rate):
            return Rejected("tax_mismatch", f"line {index}: |amount × rate − tax| > 0.06")
        amount += line.amount
        tax += line.tax
    if amount != invoice.total_amount or tax != invoice.total_tax:
        return Rejected("total_mismatch", "totals are not the sums of the lines")
    if invoice.total != amount + tax:
        return Rejected("total_mismatch", "total is not total_amount + total_tax")
    return None


def _check_kind(lines: tuple[PlatformLine, ...], index: int) -> Rejected | None:
    """A goods line has a quantity and price; a discount line (折扣行) follows its goods line
    with the same name, code and rate and takes off at most that line's amount."""
    line = lines[index]
    if line.kind == "goods":
        if line.quantity is None or line.unit_price is None:
            return Rejected("invalid_line", f"line {index}: a goods line has quantity and price")
        return None
    if line.kind != "discount":
        return Rejected("invalid_line", f"line {index}: unknown line kind {line.kind!r}")
    goods = lines[index - 1] if index > 0 else None
    if goods is None or goods.kind != "goods":
        return Rejected("invalid_discount", f"line {index}: a discount line follows its goods line")
    if (goods.name, goods.tax_code) != (line.name, line.tax_code):
        return Rejected("invalid_discount", f"line {index}: not its goods line's name and code")
    if goods.tax_rate != line.tax_rate:
        return Rejected("invalid_discount", f"line {index}: not its goods line's rate")
    if line.amount >= 0 or -line.amount > goods.amount or line.tax > 0:
        return Rejected("invalid_discount", f"line {index}: discount beyond its goods line")
    return None
