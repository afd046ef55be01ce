"""The API as a seller with a key would attack it (issue 21): inputs that reached a 500 or were
wrongly accepted, callback URLs, failed-auth floods, 405s, chunked bodies, and the key
lifecycle. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from kaipiao.api.app import create_app
from kaipiao.clock import utcnow
from kaipiao.services import keys
from kaipiao.services.sellers import add_admin_key
from kaipiao.store.database import Database
from tests.factories import invoice_body
from tests.integration.conftest import Api, make_settings
from tests.integration.test_api_errors import LINE, problem


def _line(**change: Any) -> dict[str, Any]:
    return {**LINE, **change}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", "1e999999"), ("quantity", "9E+999999999"), ("unit_price", "1e-999999"),
        ("quantity", "１"), ("quantity", "٣"), ("unit_price", "1_000"), ("unit_price", " 100"),
        ("unit_price", "+100"), ("unit_price", "-1"), ("quantity", "0"), ("quantity", "0.000"),
        ("quantity", "NaN"), ("quantity", "Infinity"), ("unit_price", "1" * 40),
        ("amount", "1e3"), ("tax", "٦"),
    ],
)  # fmt: skip
async def test_decimals_outside_the_grammar_are_refused_with_a_code(
    api: Api, field: str, value: str
) -> None:
    data = problem(await api.post(invoice_body(lines=[_line(**{field: value})])), 422,
                   "invalid_amount")  # fmt: skip
    assert data["errors"][0]["loc"] == ["lines", 0, field]


@pytest.mark.parametrize("code", ["３０４０２０１９９００００００００００", "٣٠٤٠٢٠١٩٩٠٠٠٠٠٠٠٠٠٠"])
async def test_non_ascii_digits_in_a_tax_code_are_refused(api: Api, code: str) -> None:
    problem(await api.post(invoice_body(lines=[_line(tax_code=code)])), 422, "invalid_tax_code")


async def test_non_ascii_characters_in_a_buyer_credit_code_are_refused(api: Api) -> None:
    body = invoice_body(buyer={"name": "某公司", "tax_id": "９１３１０１１０６６６００７２１７Ｔ"})
    problem(await api.post(body), 422, "invalid_buyer_tax_id")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/invoices/inv_%00", "/v1/invoices/%00/proof", "/v1/invoices/a%00b/webhooks",
        "/v1/invoices?cursor=%00", "/v1/invoices?order_id=x%00y", "/v1/invoices?order_id=%ff%fe",
        "/v1/invoices/%c3%28", "/v1/invoices?order_id=a%01b",
    ],
)  # fmt: skip
async def test_nul_and_invalid_text_in_paths_and_queries_are_refused_before_the_store(
    api: Api, path: str
) -> None:
    problem(await api.client.get(path, headers=api.auth()), 400, "invalid_text")


async def test_nul_in_a_path_on_a_write_route_is_refused(api: Api) -> None:
    response = await api.client.post("/v1/invoices/inv_%00/cancel", headers=api.auth())
    problem(response, 400, "invalid_text")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/control/reset", "http://[::1]/x", "http://169.254.169.254/",
        "http://[::ffff:127.0.0.1]/", "http://localhost/", "http://10.0.0.5/hook",
        "http://2130706433/",
    ],
)  # fmt: skip
async def test_internal_callback_urls_are_refused_at_submission(api: Api, url: str) -> None:
    data = problem(await api.post(invoice_body(callback_url=url)), 403,
                   "callback_url_not_allowed")  # fmt: skip
    assert data["errors"][0]["loc"] == ["callback_url"]
    assert "127.0.0.1" not in data["detail"] or "control" not in data["detail"]


@pytest.mark.parametrize(
    "url",
    ["http://", "http:// spaced.example/", "https://a b/", "ftp://x", "http://u:p@example.com/"],
)
async def test_malformed_callback_urls_are_refused(api: Api, url: str) -> None:
    response = await api.post(invoice_body(callback_url=url))
    assert response.status_code in (403, 422)
    assert response.json()["code"] in ("invalid_request", "callback_url_not_allowed")


@pytest.fixture
async def open_api(database: Database, api: Api, tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The same store behind an app whose operator allows loopback receivers."""
    settings = make_settings(tmp_path, outbound_allow_networks="127.0.0.0/8")
    transport = httpx.ASGITransport(app=create_app(settings, database), client=("127.0.0.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://kaipiao.test") as client:
        yield client


async def test_loopback_callbacks_are_accepted_when_the_operator_allows_them(
    api: Api, open_api: httpx.AsyncClient
) -> None:
    body = invoice_body("OPEN-1", callback_url="http://127.0.0.1:9/hook")
    refused = await api.post(body)
    assert refused.status_code == 403
    accepted = await open_api.post("/v1/invoices", json=body, headers=api.auth())
    assert accepted.status_code == 202 and accepted.json()["callback_url"] == body["callback_url"]


async def test_failed_authentication_is_limited_per_address_and_counted(api: Api) -> None:
    assert (await api.client.get("/v1/invoices", headers=api.auth())).status_code == 200
    codes = []
    for n in range(40):
        response = await api.client.get(
            "/v1/invoices", headers={"Authorization": f"Bearer kp_guess{n}"}
        )
        codes.append(response.json()["code"])
    assert codes[0] == "unauthorized" and codes[-1] == "auth_rate_limited"
    assert codes.count("unauthorized") <= 21  # the burst (20) and at most one refill
    # A key already in use (cached) still works from that address; nothing else is looked up.
    assert (await api.client.get("/v1/invoices", headers=api.auth())).status_code == 200
    metrics = (await api.client.get("/metrics")).text
    assert 'kaipiao_auth_failures_total{outcome="limited"}' in metrics


async def test_method_not_allowed_says_what_is(api: Api) -> None:
    response = await api.client.delete("/v1/invoices", headers=api.auth())
    problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_an_oversized_chunked_body_on_reverse_is_a_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"reason": "'
        for _ in range(70):
            yield b"x" * 16384
        yield b'"}'

    response = await api.client.post(
        "/v1/invoices/inv_00000000000000000000/reverse", content=chunks(),
        headers={**api.auth(), "content-type": "application/json"},
    )  # fmt: skip
    problem(response, 413, "payload_too_large")


async def test_a_seller_key_rotates_with_an_overlap_and_is_revoked(api: Api) -> None:
    admin = {"Authorization": f"Bearer {await add_admin_key(api.database, now=utcnow())}"}
    seller_id = api.a.seller.id
    rotated = await api.client.post(
        f"/v1/admin/sellers/{seller_id}/keys/rotate", json={"overlap_s": 3600}, headers=admin
    )
    assert rotated.status_code == 201, rotated.text
    new_key = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
    assert (await api.client.get("/v1/invoices", headers=api.auth())).status_code == 200
    assert (await api.client.get("/v1/invoices", headers=new_key)).status_code == 200
    listed = (await api.client.get(f"/v1/admin/sellers/{seller_id}/keys", headers=admin)).json()
    assert len(listed["data"]) == 2 and all("api_key" not in k for k in listed["data"])
    # A seller's key cannot rotate anyone's key.
    denied = await api.client.post(f"/v1/admin/sellers/{seller_id}/keys/rotate", json={},
                                   headers=new_key)  # fmt: skip
    assert denied.status_code == 403
    revoked = await api.client.post(f"/v1/admin/sellers/{seller_id}/keys/revoke", headers=admin)
    assert len(revoked.json()["revoked"]) == 2
    for key in (api.auth(), new_key):  # at once on this process (cache dropped)
        problem(await api.client.get("/v1/invoices", headers=key), 401, "unauthorized")


async def test_an_old_key_stops_at_the_end_of_its_overlap(api: Api) -> None:
    seller_id = api.a.seller.id
    assert (await api.client.get("/v1/invoices", headers=api.auth())).status_code == 200
    await keys.rotate_key(api.database, seller_id, now=utcnow() - timedelta(hours=2),
                          overlap=timedelta(hours=1))  # fmt: skip
    # Rotated elsewhere (the CLI): this process learns it within the cache time.
    api.app.state.key_cache.clear()
    problem(await api.client.get("/v1/invoices", headers=api.auth()), 401, "unauthorized")


async def test_operator_keys_rotate_and_revoke(api: Api) -> None:
    first = await add_admin_key(api.database, now=utcnow())
    admin = {"Authorization": f"Bearer {first}"}
    rotated = await api.client.post("/v1/admin/operator-keys/rotate", json={"overlap_s": 0},
                                    headers=admin)  # fmt: skip
    assert rotated.status_code == 201
    problem(await api.client.get("/v1/ops/status", headers=admin), 401, "unauthorized")
    second = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
    assert (await api.client.get("/v1/ops/status", headers=second)).status_code == 200
    key_id = rotated.json()["key_id"]
    done = await api.client.post(f"/v1/admin/keys/{key_id}/revoke", headers=second)
    assert done.json()["revoked"] == [key_id]
    problem(await api.client.get("/v1/ops/status", headers=second), 401, "unauthorized")


async def test_the_webhook_secret_is_shown_once_on_rotation(api: Api) -> None:
    admin = {"Authorization": f"Bearer {await add_admin_key(api.database, now=utcnow())}"}
    response = await api.client.post(
        f"/v1/admin/sellers/{api.a.seller.id}/webhook-secret/rotate", json={}, headers=admin
    )
    assert response.status_code == 201 and response.json()["webhook_secret"].startswith("whsec_")
    missing = await api.client.post(
        "/v1/admin/sellers/sel_0000000000000000/webhook-secret/rotate", json={}, headers=admin
    )
    problem(missing, 404, "seller_not_found")
