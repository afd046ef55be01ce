"""Bad input gets a typed problem document, never a 500; guard rails refuse and count."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from kaipiao.api.app import create_app
from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Status
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.invoices import get_invoice, transition
from tests.factories import invoice_body
from tests.integration.conftest import Api, make_settings

LINE = {"name": "咨询服务", "tax_code": "3040201990000000000", "quantity": "1",
        "unit_price": "100", "tax_rate": "0.06"}  # fmt: skip


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    data: dict[str, Any] = response.json()
    assert data["code"] == code and data["status"] == status
    return data


async def test_malformed_json(api: Api) -> None:
    response = await api.client.post(
        "/v1/invoices",
        content=b'{"order_id": ',
        headers={**api.auth(), "content-type": "application/json"},
    )
    problem(response, 400, "malformed_json")


async def test_wrong_content_type(api: Api) -> None:
    response = await api.client.post(
        "/v1/invoices", content=b"order_id=1", headers={**api.auth(), "content-type": "text/plain"}
    )
    problem(response, 415, "unsupported_media_type")


async def test_body_over_one_mebibyte(api: Api) -> None:
    body = invoice_body(remark="x", lines=[LINE] * 2000)
    body["padding"] = "x" * (1024 * 1024)
    problem(await api.post(body), 413, "payload_too_large")


async def test_unknown_fields_and_float_money(api: Api) -> None:
    data = problem(await api.post({**invoice_body(), "colour": "red"}), 422, "unknown_field")
    assert data["errors"][0]["loc"] == ["colour"]
    data = problem(
        await api.post(invoice_body(lines=[{**LINE, "unit_price": 99.9}])), 422, "invalid_request"
    )
    assert "as strings" in data["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("change", "code", "loc"),
    [
        ({"lines": [{**LINE, "tax_rate": "0.16"}]}, "invalid_tax_rate", ["lines", 0, "tax_rate"]),
        ({"lines": [{**LINE, "tax_code": "12"}]}, "invalid_tax_code", ["lines", 0, "tax_code"]),
        ({"lines": [{**LINE, "tax": "6.01"}]}, "tax_mismatch", ["lines", 0, "tax"]),
        ({"lines": [{**LINE, "quantity": "0"}]}, "invalid_amount", ["lines", 0, "quantity"]),
        ({"invoice_type": "special", "buyer": {"name": "某公司"}}, "invalid_buyer_tax_id", ["buyer", "tax_id"]),
        ({"buyer": {"name": "某公司", "tax_id": "91310110666007217U"}}, "invalid_buyer_tax_id", ["buyer", "tax_id"]),
        ({"lines": [LINE] * 2001}, "invalid_request", ["lines"]),
        ({"lines": []}, "invalid_request", ["lines"]),
        ({"order_id": "x" * 65}, "invalid_request", ["order_id"]),
        ({"callback_url": "ftp://x"}, "invalid_request", ["callback_url"]),
    ],
)  # fmt: skip
async def test_rule_violations_name_the_field(
    api: Api, change: dict[str, Any], code: str, loc: list[Any]
) -> None:
    data = problem(await api.post(invoice_body(**change)), 422, code)
    assert data["errors"][0]["loc"] == loc


async def test_seller_invoice_limit_splits(database: Database, tmp_path: Any) -> None:
    seller = await add_seller(
        database,
        name="限额",
        tax_id="91310110666007217T",
        now=utcnow(),
        invoice_limit=Decimal("100"),
    )
    app = create_app(make_settings(tmp_path), database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        headers = {"Authorization": f"Bearer {seller.api_key}"}
        # 2 × 500 excluding tax, limit 100: the line's quantity split in tenths, ten invoices.
        response = await c.post("/v1/invoices", json=invoice_body(), headers=headers)
        assert response.status_code == 202
        assert (response.json()["part"], response.json()["parts"]) == (1, 10)
        small = invoice_body(lines=[{**LINE, "unit_price": "50"}])
        assert (await c.post("/v1/invoices", json=small, headers=headers)).json()["parts"] == 1
        # Over 100 invoices for one order is refused.
        huge = invoice_body(lines=[{**LINE, "unit_price": "10001"}])
        problem(await c.post("/v1/invoices", json=huge, headers=headers), 422,
                "exceeds_invoice_limit")  # fmt: skip


async def test_rate_limit_and_refusal_counts(database: Database, tmp_path: Any) -> None:
    seller = await add_seller(database, name="限流", tax_id="91310110666007217T", now=utcnow())
    app = create_app(make_settings(tmp_path, intake_rate_per_s=0.5, intake_burst=2), database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        headers = {"Authorization": f"Bearer {seller.api_key}"}
        codes = [(await c.get("/v1/invoices", headers=headers)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = await c.get("/v1/invoices", headers=headers)
        data = problem(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1 and data["detail"]
        await c.get("/v1/invoices", headers={"Authorization": "Bearer wrong"})
        metrics = (await c.get("/metrics")).text
    assert 'kaipiao_intake_refused_total{code="rate_limited"} 2.0' in metrics
    assert 'kaipiao_intake_refused_total{code="unauthorized"} 1.0' in metrics


async def test_network_allowlist(database: Database, tmp_path: Any) -> None:
    fenced = await add_seller(
        database, name="内网", tax_id="91310110666007217T", now=utcnow(),
        allowed_networks=("10.0.0.0/8",),
    )  # fmt: skip
    app = create_app(make_settings(tmp_path), database)
    headers = {"Authorization": f"Bearer {fenced.api_key}"}
    for client, status in ((("127.0.0.1", 1), 403), (("10.1.2.3", 1), 200)):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/v1/invoices", headers=headers)
        assert response.status_code == status
        if status == 403:
            problem(response, 403, "network_not_allowed")


async def test_cancel_follows_the_lifecycle(api: Api) -> None:
    queued = (await api.post(invoice_body())).json()
    url = f"/v1/invoices/{queued['id']}/cancel"
    first = await api.client.post(url, headers=api.auth())
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert (await api.client.post(url, headers=api.auth())).status_code == 200
    in_flight = (await api.post(invoice_body())).json()
    issued = (await api.post(invoice_body())).json()
    now = utcnow()

    def advance(conn: Any) -> None:
        for invoice_id, target in (
            (in_flight["id"], Status.ISSUING), (issued["id"], Status.ISSUING),
            (issued["id"], Status.ISSUED),
        ):  # fmt: skip
            stored = get_invoice(conn, invoice_id)
            assert stored is not None
            assert transition(conn, stored, target, now=now, event="test",
                              fields={"invoice_number": "26311000000000000001"}
                              if target is Status.ISSUED else None)  # fmt: skip

    await api.database.write(advance)
    requested = await api.client.post(f"/v1/invoices/{in_flight['id']}/cancel", headers=api.auth())
    assert requested.status_code == 202
    assert requested.json()["status"] == "issuing" and requested.json()["cancel_requested"]
    late = await api.client.post(f"/v1/invoices/{issued['id']}/cancel", headers=api.auth())
    problem(late, 409, "already_issued")
    missing = await api.client.post("/v1/invoices/inv_nothing/cancel", headers=api.auth())
    problem(missing, 404, "not_found")


async def test_store_outage_is_503_not_500(tmp_path: Any) -> None:
    dead = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    app = create_app(make_settings(tmp_path), dead)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/v1/invoices", headers={"Authorization": "Bearer any"})
        problem(response, 503, "store_unavailable")
        assert response.headers["retry-after"]
        problem(await c.get("/readyz"), 503, "store_unavailable")
        assert (await c.get("/healthz")).status_code == 200
    await dead.dispose()


async def test_unpaired_surrogates_are_invalid_text_not_a_crash(api: Api) -> None:
    raw = invoice_body()
    raw["buyer"]["name"] = "\ud800broken"
    import json as _json

    payload = _json.dumps(raw).encode()  # ensure_ascii keeps the escape: "\ud800"
    response = await api.client.post(
        "/v1/invoices", content=payload, headers={**api.auth(), "content-type": "application/json"}
    )
    data = problem(response, 422, "invalid_request")
    assert "surrogate" in data["detail"]


@pytest.mark.parametrize("field", ["remark", "order_id", "buyer.name", "lines.0.name"])
async def test_a_nul_character_is_invalid_text_on_every_store(api: Api, field: str) -> None:
    raw = invoice_body()
    *path, last = field.split(".")
    target: Any = raw
    for part in path:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = "a\u0000b"
    problem(await api.post(raw), 422, "invalid_request")
    # An escaped backslash before "u0000" is plain text, not a NUL.
    raw = invoice_body(remark="C:\\u0000")
    assert (await api.post(raw)).status_code == 202
