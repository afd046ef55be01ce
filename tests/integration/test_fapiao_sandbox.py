"""Discount lines, partial reversals and split orders through the engine and the real sandbox
process over HTTP, on SQLite and PostgreSQL: what the platform's own record shows."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx

from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Status
from kaipiao.engine.worker import Worker
from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.services import intake, reversal
from kaipiao.services.invoice_request import InvoiceCreate
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.invoices import get_invoice
from tests.engine_support import FAST, all_invoices, statuses
from tests.factories import SELLER_TAX_ID, invoice_body
from tests.integration.test_engine_sandbox import (
    FAST_CALM,
    put_faults,
    run_for,
    run_until_terminal,
    sandbox_stats,
)
from tests.processes import Running

CHAIR = {"name": "办公椅", "tax_code": "1060512990000000000", "quantity": "3",
         "unit_price": "199.99", "tax_rate": "0.13", "discount": "59.99"}  # fmt: skip
SERVICE = {"name": "咨询服务", "tax_code": "3040201990000000000", "quantity": "2",
           "unit_price": "500", "tax_rate": "0.06"}  # fmt: skip


async def record(sandbox: Running, serial_no: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{sandbox.url}/_sandbox/records", params={"serial_no": serial_no}
        )
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]


async def submit(db: Database, seller: Any, body: dict[str, Any]) -> dict[str, Any]:
    create = InvoiceCreate.model_validate(body)
    accepted = await intake.submit_invoice(
        db, seller, create.to_domain(), create.canonical(), now=utcnow()
    )
    return accepted.document


def platform(sandbox: Running) -> HttpPlatform:
    return HttpPlatform(
        sandbox.url, HttpSettings(read_timeout_s=1.0, connect_timeout_s=0.5, pool_timeout_s=2.0)
    )


async def test_discount_and_partial_reversal_on_the_platform(
    database: Database, sandbox: Running
) -> None:
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    doc = await submit(database, seller, invoice_body("DISC-1", lines=[CHAIR, SERVICE]))
    http = platform(sandbox)
    try:
        await run_until_terminal(Worker(database, http, FAST, seed=1), database, 30)
        blue = await database.read(lambda conn: get_invoice(conn, doc["id"]))
        assert blue is not None and blue.status is Status.ISSUED
        on_platform = await record(sandbox, blue.serial_no)
        assert on_platform["status"] == "issued"
        assert on_platform["invoice_number"] == blue.invoice_number
        kinds = [(line.get("kind", "goods"), line["amount"], line["tax"])
                 for line in on_platform["lines"]]  # fmt: skip
        assert kinds == [("goods", "599.97", "78.00"), ("discount", "-59.99", "-7.80"),
                         ("goods", "1000.00", "60.00")]  # fmt: skip
        assert Decimal(on_platform["total"]) == blue.total == Decimal("1670.18")
        # Reverse one chair (with its share of the discount), then issue the red invoice.
        red = await reversal.reverse_invoice(
            database, seller, blue.id, "sales_return", now=utcnow(), lines=[(0, Decimal(1))]
        )
        await run_until_terminal(Worker(database, http, FAST, seed=2), database, 30)
    finally:
        await http.aclose()
    issued_red = await database.read(lambda conn: get_invoice(conn, red.id))
    assert issued_red is not None and issued_red.status is Status.ISSUED
    red_record = await record(sandbox, red.serial_no)
    assert red_record["kind"] == "red" and red_record["status"] == "issued"
    assert red_record["original_invoice_number"] == blue.invoice_number
    assert [(line["original_index"], line["quantity"], line["amount"], line["tax"])
            for line in red_record["lines"]] == [(0, "-1", "-179.99", "-23.40")]  # fmt: skip
    assert Decimal(red_record["total"]) == Decimal("-203.39")
    after = await database.read(lambda conn: get_invoice(conn, blue.id))
    assert after is not None and after.status is Status.ISSUED
    assert after.reversible_total == Decimal("1466.79")
    assert (await record(sandbox, blue.serial_no))["reversed_by"] is None


async def test_split_order_issued_exactly_once_under_ambiguous_faults(
    database: Database, sandbox: Running
) -> None:
    seller = (
        await add_seller(
            database,
            name="甲",
            tax_id=SELLER_TAX_ID,
            now=utcnow(),
            region="44",
            invoice_limit=Decimal("1200"),
            max_lines=4,
        )
    ).seller
    lines = [SERVICE, {**CHAIR, "quantity": "20"}, SERVICE, {**SERVICE, "quantity": "5"}]
    orders = [await submit(database, seller, invoice_body(f"BIG-{i}", lines=lines))
              for i in range(3)]  # fmt: skip
    parts = orders[0]["parts"]
    assert parts > 3 and all(doc["parts"] == parts for doc in orders)
    # Dedup off: a resent serial would be a second invoice on the platform.
    await put_faults(sandbox, {"profile": "ambiguous", "ambiguous_rate": 0.4, "dedup": False})
    http = platform(sandbox)
    config = replace(FAST, lease_s=4.0, renew_every_s=1.0, settle_s=1.5)
    try:
        await run_for(Worker(database, http, config, seed=3), 2.0)
        during = await sandbox_stats(sandbox)
        await put_faults(sandbox, {"profile": "ideal", **FAST_CALM})
        await run_until_terminal(Worker(database, http, config, seed=4), database, 60)
    finally:
        await http.aclose()
    assert any("ambiguous" in key and n > 0 for key, n in during["calls"].items()), during
    items = await all_invoices(database)
    assert statuses(items) == {"issued": 3 * parts}, statuses(items)
    stats = await sandbox_stats(sandbox)
    assert stats["duplicates"] == {"by_serial": 0, "by_order": 0}, stats
    assert stats["blue_issued"] == 3 * parts
    for doc in orders:
        group = [i for i in items if i.order_id == doc["order_id"]]
        assert sorted(i.part for i in group) == list(range(1, parts + 1))
        on_platform = [Decimal((await record(sandbox, i.serial_no))["total"]) for i in group]
        assert sum(on_platform, Decimal(0)) == sum((i.total for i in group), Decimal(0))
