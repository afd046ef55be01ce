"""What an operator's e2e test needs beyond the CLI: a seller's invoices through a running
`kaipiao serve`, and an invoice brought to `attention` the way reconciliation finds one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.factories import SELLER_TAX_ID, invoice_body
from tests.processes import Running, kaipiao


def post_invoice(serve: Running, key: str, order_id: str) -> dict[str, Any]:
    answer = httpx.post(f"{serve.url}/v1/invoices", json=invoice_body(order_id),
                        headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    assert answer.status_code == 202, answer.text
    return answer.json()  # type: ignore[no-any-return]


def issue_behind_kaipiaos_back(
    sandbox: Running, invoice: dict[str, Any], seller_tax_id: str = SELLER_TAX_ID
) -> str:
    """The platform issues the invoice's serial, as a send whose record kaipiao lost would have
    (a store restored from a backup taken before the send). Returns the invoice number."""
    body = {
        "serial_no": invoice["serial_no"], "order_ref": invoice["order_id"],
        "seller_tax_id": seller_tax_id, "seller_region": "31",
        "invoice_type": invoice["invoice_type"], "buyer": invoice["buyer"],
        "lines": invoice["lines"], "total_amount": invoice["total_amount"],
        "total_tax": invoice["total_tax"], "total": invoice["total"],
        "remark": invoice["remark"],
    }  # fmt: skip
    answer = httpx.post(f"{sandbox.url}/v1/invoices", json=body, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    number: str = answer.json()["invoice_number"]
    return number


def invoices(store: list[str], cwd: Path, *flags: str) -> list[dict[str, Any]]:
    listed = kaipiao("invoices", "list", "--json", *flags, *store, cwd=cwd)
    return json.loads(listed.stdout)  # type: ignore[no-any-return]


def wait_for_status(
    store: list[str], cwd: Path, invoice_ids: list[str], status: str, timeout_s: float = 60
) -> list[dict[str, Any]]:
    """Poll `kaipiao invoices list` until every one of `invoice_ids` has `status`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [i for i in invoices(store, cwd, "--limit", "200") if i["id"] in invoice_ids]
        if all(i["status"] == status for i in found) and len(found) == len(invoice_ids):
            return found
        assert time.monotonic() < deadline, [(i["id"], i["status"]) for i in found]
        time.sleep(0.3)
