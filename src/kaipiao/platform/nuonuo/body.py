"""Request bodies of Nuonuo's open API, and the fields read from its answers.

Blue invoices go out as `requestBillingNew` `{"order": {...}}` with our `serial_no` as `orderNo`
(unique per company, at most 20 characters: our serials are exactly 20). Amounts are ours, already
computed by the domain rules to the cent: `taxExcludedAmount × taxRate = tax` within 0.06 and
`taxExcludedAmount + tax = taxIncludedAmount` hold by construction. `invoiceDate` is China time
(UTC+8, no daylight saving). The red-letter bodies (`saveInvoiceRedConfirm`, `fastInvoiceRed`)
carry the fields the public SDKs name; their full schemas were not available (docs/providers.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from kaipiao.platform.nuonuo.codes import RED_REASON
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine, RedRequest

CHINA = timezone(timedelta(hours=8))
INVOICE_LINE = {"special": "bs", "normal": "pc"}  # 数电专票, 数电普票
# Lines taxed at zero for a reason: favouredPolicyFlag 03 免税, 04 不征税.
FAVOURED_POLICY = {"exempt": "03", "non_taxable": "04"}
# invoiceLineProperty: 0 a normal line, 2 a discounted goods line, 1 its discount line (折扣行)
# right after it, with no quantity or price (reference: nuonuo.md, InvoiceDetailDto).
LINE_PROPERTY = {"normal": "0", "discount": "1", "discounted": "2"}
NUMBER_FIELDS = ("allElectronicInvoiceNumber", "allElectronicInvoiceNumbe")  # both spellings seen


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def _text(value: Decimal | None) -> str:
    return "" if value is None else str(value)


def _line(line: PlatformLine, discounted: bool) -> dict[str, Any]:
    favoured = FAVOURED_POLICY.get(line.tax_rate)
    body: dict[str, Any] = {
        "goodsName": line.name,
        "goodsCode": line.tax_code,
        "specType": line.spec or "",
        "unit": line.unit or "",
        "num": _text(line.quantity),
        "price": _text(line.unit_price),
        "withTaxFlag": "1" if line.price_includes_tax else "0",
        "taxRate": "0" if favoured else line.tax_rate,
        "tax": _money(line.tax),
        "taxExcludedAmount": _money(line.amount),
        "taxIncludedAmount": _money(line.amount + line.tax),
        "invoiceLineProperty": LINE_PROPERTY[
            "discount" if line.kind == "discount" else "discounted" if discounted else "normal"
        ],
    }
    if favoured:
        body["favouredPolicyFlag"] = favoured
    return body


def _lines(lines: tuple[PlatformLine, ...]) -> list[dict[str, Any]]:
    return [
        _line(line, index + 1 < len(lines) and lines[index + 1].kind == "discount")
        for index, line in enumerate(lines)
    ]


def billing_body(
    invoice: PlatformInvoice, *, now: datetime, clerk: str, callback_url: str | None = None
) -> dict[str, Any]:
    """`requestBillingNew` for a blue invoice."""
    buyer = invoice.buyer
    account = " ".join(part for part in (buyer.bank, buyer.account) if part)
    order: dict[str, Any] = {
        "buyerName": buyer.name,
        "buyerTaxNum": buyer.tax_id or "",
        "buyerTel": buyer.phone or "",
        "buyerAddress": buyer.address or "",
        "buyerAccount": account,
        "salerTaxNum": invoice.seller_tax_id,
        "orderNo": invoice.serial_no,
        "invoiceDate": now.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
        "clerk": clerk,
        "remark": invoice.remark or "",
        "pushMode": "0" if buyer.email else "-1",
        "email": buyer.email or "",
        "invoiceType": "1",
        "invoiceLine": INVOICE_LINE.get(invoice.invoice_type, "pc"),
        "invoiceDetail": _lines(invoice.lines),
    }
    if callback_url:
        order["callBackUrl"] = callback_url
    return {"order": order}


def query_body(order_no: str) -> dict[str, Any]:
    """`queryInvoiceResult` by our order number (we keep it; the provider's serial we do not)."""
    return {"orderNos": [order_no], "isOfferInvoiceDetail": "0"}


def red_confirm_body(request: RedRequest) -> dict[str, Any]:
    """`saveInvoiceRedConfirm`: the 红字确认单 for a 数电 blue invoice, keyed by our red serial.
    A partial reversal (部分红冲) lists its lines in `detail`, each by `blueDetailIndex`, the
    1-based position of the blue invoice's line it reverses (a discounted line's own index: its
    discount line is skipped, the amounts are net of it)."""
    body: dict[str, Any] = {
        "billId": request.serial_no,
        "blueInvoiceNumber": request.original_invoice_number,
        "redReason": RED_REASON.get(request.reason, RED_REASON["invoicing_error"]),
        "taxNum": request.seller_tax_id,
        "applySource": "0",  # the seller applies
    }
    if request.lines:
        body["detail"] = [_red_detail(line) for line in request.lines]
    return body


def _red_detail(line: PlatformLine) -> dict[str, Any]:
    favoured = FAVOURED_POLICY.get(line.tax_rate)
    price = ""
    if line.quantity:  # the price excluding tax, positive, as the detail states it
        price = str((line.amount / line.quantity).quantize(Decimal("0.00000001")))
    return {
        "blueDetailIndex": str((line.original_index or 0) + 1),
        "goodsName": line.name,
        "goodsCode": line.tax_code,
        "specType": line.spec or "",
        "unit": line.unit or "",
        "num": _text(line.quantity),
        "taxExcludedPrice": price,
        "taxExcludedAmount": _money(line.amount),
        "taxAmount": _money(line.tax),
        "taxRate": "0" if favoured else line.tax_rate,
        "favouredPolicyFlag": favoured or "",
    }


def red_confirm_query_body(request: RedRequest) -> dict[str, Any]:
    return {"billId": request.serial_no, "taxNum": request.seller_tax_id}


def fast_red_body(request: RedRequest, bill_no: str, bill_uuid: str | None) -> dict[str, Any]:
    """`fastInvoiceRed`: the red invoice under our red serial, against a confirmed form."""
    body: dict[str, Any] = {
        "orderNo": request.serial_no,
        "taxNum": request.seller_tax_id,
        "invoiceNumber": request.original_invoice_number,
        "billNo": bill_no,
    }
    if bill_uuid:
        body["billUuid"] = bill_uuid
    return body


def invoice_number(item: dict[str, Any]) -> str | None:
    for name in NUMBER_FIELDS:
        value = item.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def invoice_time(item: dict[str, Any], fallback: datetime) -> datetime:
    """`invoiceTime` is epoch milliseconds."""
    value = item.get("invoiceTime")
    if not isinstance(value, int | str):
        return fallback
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return fallback
