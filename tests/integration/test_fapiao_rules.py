"""Discount lines, split orders, merged orders and partial reversals through the HTTP API, on
SQLite and PostgreSQL (the `api` fixture runs on both stores)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from kaipiao.api.app import create_app
from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Status
from kaipiao.domain.words import amount_in_words
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.invoices import get_invoice, transition
from tests.factories import invoice_body
from tests.integration.conftest import Api, make_settings

GOODS = {"name": "办公椅", "tax_code": "1060512990000000000", "quantity": "3",
         "unit_price": "199.99", "tax_rate": "0.13"}  # fmt: skip
SERVICE = {"name": "咨询服务", "tax_code": "3040201990000000000", "quantity": "2",
           "unit_price": "500", "tax_rate": "0.06"}  # fmt: skip


def money(text: str) -> Decimal:
    return Decimal(text)


def check_document(doc: dict[str, Any]) -> None:
    """Totals are the sums of the lines and the words say the total."""
    amount = sum((money(line["amount"]) for line in doc["lines"]), Decimal(0))
    tax = sum((money(line["tax"]) for line in doc["lines"]), Decimal(0))
    assert (money(doc["total_amount"]), money(doc["total_tax"])) == (amount, tax)
    assert money(doc["total"]) == amount + tax
    assert doc["total_in_words"] == amount_in_words(amount + tax)


async def issue(db: Database, invoice_id: str, number: str) -> None:
    """Mark an accepted invoice issued, as the engine would."""

    def work(conn: Any) -> None:
        invoice = get_invoice(conn, invoice_id)
        assert invoice is not None
        assert transition(conn, invoice, Status.ISSUING, now=utcnow(), event="claimed")
        issuing = get_invoice(conn, invoice_id)
        assert issuing is not None
        assert transition(conn, issuing, Status.ISSUED, now=utcnow(), event="issued",
                          fields={"invoice_number": number, "issued_at": utcnow()})  # fmt: skip

    await db.write(work)


async def test_discount_lines_follow_their_goods_line(api: Api) -> None:
    body = invoice_body(lines=[{**GOODS, "discount": "59.99"}, SERVICE])
    response = await api.post(body)
    assert response.status_code == 202, response.text
    doc = response.json()
    goods, discount, service = doc["lines"]
    assert goods["kind"] == "goods" and (goods["amount"], goods["tax"]) == ("599.97", "78.00")
    assert discount == {
        "kind": "discount", "name": "办公椅", "tax_code": "1060512990000000000", "spec": None,
        "unit": None, "quantity": None, "unit_price": None, "tax_rate": "0.13",
        "price_includes_tax": False, "amount": "-59.99", "tax": "-7.80",
    }  # fmt: skip
    assert "kind" not in service
    assert (doc["total_amount"], doc["total_tax"], doc["total"]) == ("1539.98", "130.20", "1670.18")
    assert doc["total_in_words"] == "壹仟陆佰柒拾元壹角捌分"
    check_document(doc)
    # The same discount as its own line issues the same lines.
    explicit = invoice_body(
        lines=[
            GOODS,
            {
                "kind": "discount",
                "name": "办公椅",
                "tax_code": "1060512990000000000",
                "tax_rate": "0.13",
                "amount": "-59.99",
            },
            SERVICE,
        ]
    )
    again = (await api.post(explicit)).json()
    assert again["lines"] == doc["lines"]


async def test_discounts_refused_with_their_codes(api: Api) -> None:
    cases = [
        ([{**GOODS, "discount": "600.00"}], "discount_exceeds_line"),
        ([{**GOODS, "discount": "0"}], "invalid_discount"),
        ([{**GOODS, "discount": "1.001"}], "invalid_discount"),
        ([GOODS, {"kind": "discount", "name": "办公椅", "tax_code": "1060512990000000000",
                  "tax_rate": "0.09", "amount": "-10"}], "discount_rate_mismatch"),
        ([GOODS, {"kind": "discount", "name": "别的", "tax_code": "1060512990000000000",
                  "tax_rate": "0.13", "amount": "-10"}], "discount_line_mismatch"),
        ([{"kind": "discount", "name": "办公椅", "tax_code": "1060512990000000000",
           "tax_rate": "0.13", "amount": "-10"}], "discount_line_mismatch"),
    ]  # fmt: skip
    for lines, code in cases:
        response = await api.post(invoice_body(lines=lines))
        assert response.status_code == 422, response.text
        assert response.json()["code"] == code, (lines, response.json())


async def test_split_order_issued_as_parts_listed_under_the_order(
    database: Database, tmp_path: Any
) -> None:
    seller = await add_seller(database, name="限额", tax_id="91310110666007217T", now=utcnow(),
                              invoice_limit=Decimal("1000"), max_lines=3)  # fmt: skip
    app = create_app(make_settings(tmp_path), database)
    lines = [{**SERVICE, "quantity": "3", "unit_price": "333.33"}, GOODS,
             {**GOODS, "quantity": "7", "discount": "100"}, SERVICE]  # fmt: skip
    body = invoice_body("SPLIT-1", lines=lines)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        headers = {"Authorization": f"Bearer {seller.api_key}", "Idempotency-Key": "split-1"}
        first = await c.post("/v1/invoices", json=body, headers=headers)
        assert first.status_code == 202, first.text
        head = first.json()
        listed = (await c.get("/v1/invoices", params={"order_id": "SPLIT-1"},
                              headers=headers)).json()["data"]  # fmt: skip
        # Replays: the same key, the same order without a key, and the whole group stays one.
        replay = await c.post("/v1/invoices", json=body, headers=headers)
        again = await c.post(
            "/v1/invoices", json=body, headers={"Authorization": headers["Authorization"]}
        )
        other = await c.post("/v1/invoices", json=invoice_body("SPLIT-1"),
                             headers={"Authorization": headers["Authorization"]})  # fmt: skip
        relisted = (await c.get("/v1/invoices", params={"order_id": "SPLIT-1"},
                                headers=headers)).json()["data"]  # fmt: skip
    parts = sorted(listed, key=lambda doc: doc["part"])
    assert head["part"] == 1 and head["parts"] == len(parts) > 1
    assert [doc["part"] for doc in parts] == list(range(1, len(parts) + 1))
    assert all(doc["parts"] == len(parts) for doc in parts)
    for doc in parts:
        check_document(doc)
        assert money(doc["total_amount"]) <= Decimal("1000")
        assert len(doc["lines"]) <= 3
    whole = invoice_body("WHOLE", lines=lines)
    # The parts sum exactly to the order priced whole (a seller without limits).
    other_seller = await add_seller(database, name="无限额", tax_id="91110108551385082Q",
                                    now=utcnow())  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        one = (
            await c.post(
                "/v1/invoices",
                json=whole,
                headers={"Authorization": f"Bearer {other_seller.api_key}"},
            )
        ).json()
    assert one["parts"] == 1
    for name in ("total_amount", "total_tax", "total"):
        assert sum((money(doc[name]) for doc in parts), Decimal(0)) == money(one[name])
    assert replay.status_code == 202 and replay.json()["id"] == head["id"]
    assert again.status_code == 200 and again.json()["id"] == head["id"]
    assert other.status_code == 409 and other.json()["code"] == "order_conflict"
    assert sorted(doc["id"] for doc in relisted) == sorted(doc["id"] for doc in parts)


async def test_merged_orders_on_one_invoice(api: Api) -> None:
    body = invoice_body(lines=[SERVICE, GOODS])
    del body["order_id"]
    body["order_ids"] = ["M-1", "M-2", "M-3"]
    created = await api.post(body)
    assert created.status_code == 202, created.text
    doc = created.json()
    assert doc["order_id"] == "M-1" and doc["order_ids"] == ["M-1", "M-2", "M-3"]
    for order_id in ("M-1", "M-2", "M-3"):
        found = await api.client.get("/v1/invoices", params={"order_id": order_id},
                                     headers=api.auth())  # fmt: skip
        assert [item["id"] for item in found.json()["data"]] == [doc["id"]]
    assert (await api.post(body)).status_code == 200  # the same merged request again
    alone = await api.post(invoice_body("M-2"))
    assert alone.status_code == 409 and alone.json()["code"] == "order_already_invoiced"
    first = await api.post(invoice_body("SOLO-1"))
    assert first.status_code == 202
    overlap = {**body, "order_ids": ["M-9", "SOLO-1"]}
    refused = await api.post(overlap)
    assert refused.status_code == 409 and refused.json()["code"] == "order_already_invoiced"
    assert "SOLO-1" in refused.json()["detail"]
    both = {**body, "order_id": "X"}
    assert (await api.post(both)).status_code == 422


async def test_partial_reversals_until_nothing_is_left(api: Api) -> None:
    doc = (await api.post(invoice_body(lines=[{**GOODS, "discount": "59.99"}, SERVICE]))).json()
    await issue(api.database, doc["id"], "26312000000000000001")
    url = f"/v1/invoices/{doc['id']}/reverse"
    by_lines = await api.client.post(url, headers=api.auth(), json={
        "reason": "sales_return", "lines": [{"index": 0, "quantity": "1"}]})  # fmt: skip
    assert by_lines.status_code == 202, by_lines.text
    red = by_lines.json()
    # One of three discounted chairs: net 539.98 / 70.20 → a third, tax by the rate.
    assert [(line["original_index"], line["quantity"], line["amount"], line["tax"])
            for line in red["lines"]] == [(0, "-1", "-179.99", "-23.40")]  # fmt: skip
    assert red["kind"] == "red" and red["original_id"] == doc["id"]
    check_document(red)
    original = (await api.client.get(f"/v1/invoices/{doc['id']}", headers=api.auth())).json()
    assert original["status"] == "issued"
    assert money(original["reversible_total"]) == money(doc["total"]) + money(red["total"])
    bad = [
        ({"reason": "sales_return", "lines": [{"index": 1, "quantity": "1"}]}, 422,
         "invalid_reverse_line"),  # the discount line itself
        ({"reason": "sales_return", "lines": [{"index": 0, "quantity": "3"}]}, 409,
         "exceeds_reversible"),
        ({"reason": "sales_discount", "amount": "99999"}, 409, "exceeds_reversible"),
        ({"reason": "sales_discount", "amount": "1", "lines": [{"index": 0, "quantity": "1"}]},
         422, "invalid_request"),
    ]  # fmt: skip
    for body, status, code in bad:
        response = await api.client.post(url, headers=api.auth(), json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), body
    by_amount = await api.client.post(
        url, headers=api.auth(), json={"reason": "sales_discount", "amount": "100.00"}
    )
    assert by_amount.status_code == 202, by_amount.text
    assert money(by_amount.json()["total"]) == Decimal("-100.00")
    check_document(by_amount.json())
    rest = await api.client.post(url, headers=api.auth(), json={"reason": "invoicing_error"})
    assert rest.status_code == 202
    total_red = money(red["total"]) + Decimal("-100.00") + money(rest.json()["total"])
    assert total_red == -money(doc["total"])
    final = (await api.client.get(f"/v1/invoices/{doc['id']}", headers=api.auth())).json()
    assert final["status"] == "reversing" and final["reversible_total"] == "0.00"
    more = await api.client.post(url, headers=api.auth(), json={"reason": "invoicing_error"})
    assert more.status_code == 409 and more.json()["code"] == "already_reversed"


async def test_concurrent_partial_reversals_never_exceed_the_original(api: Api) -> None:
    doc = (await api.post(invoice_body(lines=[SERVICE]))).json()  # 1060.00
    await issue(api.database, doc["id"], "26312000000000000002")
    url = f"/v1/invoices/{doc['id']}/reverse"

    async def reverse() -> httpx.Response:
        return await api.client.post(
            url, headers=api.auth(), json={"reason": "sales_discount", "amount": "300.00"}
        )

    answers = await asyncio.gather(*(reverse() for _ in range(8)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [202, 202, 202] + [409] * 5, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"exceeds_reversible"}
    original = (await api.client.get(f"/v1/invoices/{doc['id']}", headers=api.auth())).json()
    assert original["reversible_total"] == "160.00"
    reds = (await api.client.get("/v1/invoices", params={"order_id": doc["order_id"]},
                                 headers=api.auth())).json()["data"]  # fmt: skip
    assert sum(money(r["total"]) for r in reds if r["kind"] == "red") == Decimal("-900.00")
