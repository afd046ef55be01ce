"""Builders of valid requests for tests; each returns a fresh object so tests can vary one field."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from kaipiao.domain.invoice import Buyer
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine

SELLER_TAX_ID = "91310110666007217T"
OTHER_SELLER_TAX_ID = "91110108551385082Q"
BUYER_TAX_ID = "91440300MA5G9GK78Y"
_counter = itertools.count(1)


def platform_invoice(
    serial_no: str | None = None,
    *,
    order_ref: str | None = None,
    seller_tax_id: str = SELLER_TAX_ID,
    region: str | None = "31",
    lines: int = 1,
) -> PlatformInvoice:
    n = next(_counter)
    line = PlatformLine(
        name="咨询服务",
        tax_code="3040201990000000000",
        quantity=Decimal("1"),
        unit_price=Decimal("100"),
        tax_rate="0.06",
        amount=Decimal("100.00"),
        tax=Decimal("6.00"),
    )
    return PlatformInvoice(
        serial_no=serial_no or f"T{n:08d}",
        order_ref=order_ref or f"ORDER-{n}",
        seller_tax_id=seller_tax_id,
        seller_region=region,
        invoice_type="normal",
        buyer=Buyer(name="某某公司", tax_id=BUYER_TAX_ID),
        lines=(line,) * lines,
        total_amount=Decimal("100.00") * lines,
        total_tax=Decimal("6.00") * lines,
        total=Decimal("106.00") * lines,
    )


def invoice_body(order_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid `POST /v1/invoices` body."""
    body: dict[str, Any] = {
        "order_id": order_id or f"ORD-{next(_counter)}",
        "invoice_type": "normal",
        "buyer": {"name": "上海某某科技有限公司", "tax_id": BUYER_TAX_ID},
        "lines": [
            {
                "name": "咨询服务",
                "tax_code": "3040201990000000000",
                "quantity": "2",
                "unit_price": "500",
                "tax_rate": "0.06",
            }
        ],
    }
    body.update(overrides)
    return body
