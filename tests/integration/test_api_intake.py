"""The v1 intake API over SQLite and PostgreSQL: acceptance, money, errors, tenants, listing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from kaipiao.store.tables import invoices, ledger_events
from tests.factories import invoice_body
from tests.integration.conftest import Api


async def count(api: Api, table=invoices) -> int:  # type: ignore[no-untyped-def]
    return int(
        await api.database.read(
            lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()
        )
    )


async def test_accepts_prices_and_stores_with_an_event(api: Api) -> None:
    body = invoice_body(
        lines=[
            {"name": "咨询服务", "tax_code": "3040201990000000000", "quantity": "2",
             "unit_price": "500", "tax_rate": "0.06"},
            {"name": "软件", "tax_code": "1060201070000000000", "quantity": "1",
             "unit_price": "113", "tax_rate": "0.13", "price_includes_tax": True},
            {"name": "图书", "tax_code": "1060101010000000000", "quantity": "3",
             "unit_price": "20.5", "tax_rate": "exempt"},
        ]
    )  # fmt: skip
    response = await api.post(body)
    assert response.status_code == 202, response.text
    invoice = response.json()
    assert invoice["status"] == "queued" and invoice["kind"] == "blue"
    assert [(ln["amount"], ln["tax"]) for ln in invoice["lines"]] == [
        ("1000.00", "60.00"), ("100.00", "13.00"), ("61.50", "0.00"),
    ]  # fmt: skip
    assert (invoice["total_amount"], invoice["total_tax"], invoice["total"]) == (
        "1161.50", "73.00", "1234.50",
    )  # fmt: skip
    assert invoice["total_in_words"] == "壹仟贰佰叁拾肆元伍角"
    assert len(invoice["serial_no"]) == 20 and invoice["invoice_number"] is None
    fetched = await api.client.get(f"/v1/invoices/{invoice['id']}", headers=api.auth())
    assert fetched.status_code == 200 and fetched.json() == invoice
    events = await api.database.read(lambda conn: conn.execute(select(ledger_events)).all())
    total = await api.database.read(
        lambda conn: conn.execute(select(invoices.c.total)).scalar_one()
    )
    assert [e.type for e in events] == ["accepted"]
    assert json.loads(events[0].payload)["serial_no"] == invoice["serial_no"]
    assert total == Decimal("1234.50") and isinstance(total, Decimal)


async def test_same_order_same_body_returns_it_and_other_body_conflicts(api: Api) -> None:
    body = invoice_body("ORDER-7")
    first = await api.post(body)
    again = await api.post(body)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await api.post({**body, "remark": "changed"})
    assert other.status_code == 409 and other.json()["code"] == "order_conflict"
    assert await count(api) == 1


async def test_tenants_cannot_see_each_other(api: Api) -> None:
    mine = (await api.post(invoice_body("SHARED-1"))).json()
    theirs = await api.post(invoice_body("SHARED-1"), who=api.b)
    assert theirs.status_code == 202 and theirs.json()["id"] != mine["id"]
    peek = await api.client.get(f"/v1/invoices/{mine['id']}", headers=api.auth(api.b))
    assert peek.status_code == 404 and peek.json()["code"] == "not_found"
    cancel = await api.client.post(f"/v1/invoices/{mine['id']}/cancel", headers=api.auth(api.b))
    assert cancel.status_code == 404
    listed = await api.client.get("/v1/invoices", headers=api.auth(api.b))
    assert [i["id"] for i in listed.json()["data"]] == [theirs.json()["id"]]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [({}, "Bearer"), ({"Authorization": "Bearer nope"}, "unknown"),
     ({"Authorization": "Basic abc"}, "Bearer")],
)  # fmt: skip
async def test_authentication(api: Api, headers: dict[str, str], detail: str) -> None:
    response = await api.client.post("/v1/invoices", json=invoice_body(), headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized" and detail in response.json()["detail"]


async def test_listing_filters_and_cursor(api: Api) -> None:
    ids = [(await api.post(invoice_body(f"L-{i}"))).json()["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/invoices", params=params, headers=api.auth())).json()
        seen += [i["id"] for i in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    by_order = await api.client.get("/v1/invoices", params={"order_id": "L-3"}, headers=api.auth())
    assert [i["order_id"] for i in by_order.json()["data"]] == ["L-3"]
    queued = await api.client.get("/v1/invoices", params={"status": "queued"}, headers=api.auth())
    assert len(queued.json()["data"]) == 7
    issued = await api.client.get("/v1/invoices", params={"status": "issued"}, headers=api.auth())
    assert issued.json()["data"] == []
    for bad in ({"limit": "0"}, {"limit": "500"}, {"status": "lost"}):
        response = await api.client.get("/v1/invoices", params=bad, headers=api.auth())
        assert response.status_code == 422, bad


@pytest.mark.parametrize(
    "cursor",
    ["nonsense", "inv_", "inv_short", "sel_0VcaL1gp4CkfoYwCiNj3", "inv_0VcaL1gp4Ckf-YwCiNj3"],
)
async def test_a_cursor_that_is_no_invoice_id_is_invalid_cursor(api: Api, cursor: str) -> None:
    await api.post(invoice_body("C-1"))
    response = await api.client.get("/v1/invoices", params={"cursor": cursor}, headers=api.auth())
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_cursor"


async def test_a_cursor_past_the_last_invoice_is_an_empty_page(api: Api) -> None:
    [first] = [(await api.post(invoice_body("C-2"))).json()["id"]]
    response = await api.client.get("/v1/invoices", params={"cursor": first}, headers=api.auth())
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {"status": "ready"}
    spec = (await api.client.get("/openapi.json")).json()
    assert "/v1/invoices" in spec["paths"]
