"""An issued invoice's XML file, in the element structure of the 数电发票 XML.

The element names follow the Ministry of Finance's 电子凭证会计数据标准 for 全面数字化的电子发票,
as real 数电 XML files carry them: `EInvoice` / `Header` (`EIid`, `EInvoiceTag`, `Version`) /
`EInvoiceData` (`SellerInformation`, `BuyerInformation`, `BasicInformation`, one
`IssuItemInformation` per line, `AdditionalInformation`) / `TaxSupervisionInfo` (`InvoiceNumber`,
`IssueTime`). What we emit is described by our own schema, `docs/schemas/einvoice.xsd`: a
subset of the standard (no signature block, no special-business elements), checked by the tests.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from kaipiao.sandbox.sheet import Sheet

VERSION = "0.2"


def _add(parent: ET.Element, tag: str, text: str | None) -> None:
    if text is not None and text != "":
        ET.SubElement(parent, tag).text = text


def invoice_xml(sheet: Sheet) -> bytes:
    """The XML file of `sheet`, UTF-8 with a declaration."""
    root = ET.Element("EInvoice")
    header = ET.SubElement(root, "Header")
    _add(header, "EIid", sheet.number)
    _add(header, "EInvoiceTag", f"SWEI{sheet.type_code}00")
    _add(header, "Version", VERSION)
    data = ET.SubElement(root, "EInvoiceData")
    seller = ET.SubElement(data, "SellerInformation")
    _add(seller, "SellerIdNum", sheet.seller_tax_id)
    _add(seller, "SellerName", sheet.seller_name)
    buyer = ET.SubElement(data, "BuyerInformation")
    _add(buyer, "BuyerIdNum", sheet.buyer_tax_id)
    _add(buyer, "BuyerName", sheet.buyer_name)
    basic = ET.SubElement(data, "BasicInformation")
    _add(basic, "TotalAmWithoutTax", f"{sheet.total_amount:.2f}")
    _add(basic, "TotalTaxAm", f"{sheet.total_tax:.2f}")
    _add(basic, "TotalTax-includedAmount", f"{sheet.total:.2f}")
    _add(basic, "TotalTax-includedAmountInChinese", sheet.total_in_words)
    _add(basic, "RequestTime", sheet.local_time.strftime("%Y-%m-%d %H:%M:%S"))
    for line in sheet.lines:
        item = ET.SubElement(data, "IssuItemInformation")
        _add(item, "ItemName", line.name)
        _add(item, "SpecMod", line.spec)
        _add(item, "MeaUnits", line.unit)
        _add(item, "Quantity", line.quantity)
        _add(item, "UnPrice", line.unit_price)
        _add(item, "Amount", f"{line.amount:.2f}")
        _add(item, "TaxRate", line.tax_rate)
        _add(item, "ComTaxAm", f"{line.tax:.2f}")
        _add(item, "TaxClassificationCode", line.tax_code)
    if sheet.remark:
        extra = ET.SubElement(data, "AdditionalInformation")
        _add(extra, "Remark", sheet.remark)
    supervision = ET.SubElement(root, "TaxSupervisionInfo")
    _add(supervision, "InvoiceNumber", sheet.number)
    _add(supervision, "IssueTime", sheet.local_time.strftime("%Y-%m-%d %H:%M:%S"))
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
