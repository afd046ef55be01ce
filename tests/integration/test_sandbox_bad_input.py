"""Bad input to the sandbox gets a 4xx with a code: never a 500, never a hang."""

from __future__ import annotations

import httpx
import pytest

from kaipiao.platform.wire import encode_invoice
from tests.factories import platform_invoice
from tests.processes import Running


def body() -> dict:  # type: ignore[type-arg]
    return encode_invoice(platform_invoice())


def without(key: str) -> dict:  # type: ignore[type-arg]
    data = body()
    del data[key]
    return data


@pytest.mark.parametrize(
    ("path", "payload", "status", "code"),
    [
        ("/v1/invoices", b"{not json", 400, "malformed_json"),
        ("/v1/invoices", b"\xff\xfe", 400, "malformed_json"),
        ("/v1/invoices", b"[]", 400, "invalid_request"),
        ("/v1/invoices", without("serial_no"), 400, "invalid_request"),
        ("/v1/invoices", without("lines"), 400, "invalid_request"),
        ("/v1/invoices", {**body(), "total": "lots"}, 400, "invalid_request"),
        ("/v1/invoices", {**body(), "total": "NaN"}, 400, "invalid_request"),
        ("/v1/invoices", {**body(), "lines": "x"}, 400, "invalid_request"),
        ("/v1/invoices", {**body(), "buyer": {"name": 5}}, 400, "invalid_request"),
        ("/v1/invoices", {**body(), "serial_no": "x" * 21}, 400, "invalid_request"),
        ("/v1/invoices", {**body(), "invoice_type": "gold"}, 400, "invalid_invoice_type"),
        ("/v1/red-invoices", {"serial_no": "R1"}, 400, "invalid_request"),
        ("/v1/red-invoices", b"nope", 400, "malformed_json"),
        ("/_sandbox/faults", {"failure_rate": 7}, 400, "invalid_faults"),
        ("/_sandbox/faults", [1, 2], 400, "invalid_faults"),
        ("/_sandbox/faults", {"outage": "refuse", "outage_for_s": 0}, 400, "invalid_faults"),
    ],
)
def test_bad_bodies(sandbox: Running, path: str, payload: object, status: int, code: str) -> None:
    method = "PUT" if path.startswith("/_sandbox") else "POST"
    if isinstance(payload, bytes):
        response = httpx.request(
            method, sandbox.url + path, content=payload,
            headers={"content-type": "application/json"}, timeout=5,
        )  # fmt: skip
    else:
        response = httpx.request(method, sandbox.url + path, json=payload, timeout=5)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_wrong_content_type(sandbox: Running) -> None:
    response = httpx.post(f"{sandbox.url}/v1/invoices", content=b"a=b", timeout=5)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({}, "seller_tax_id"),
        ({"seller_tax_id": "X", "issued_from": "yesterday", "issued_to": "now"}, ""),
        ({"seller_tax_id": "X", "issued_from": "2026-01-01T00:00:00", "issued_to": "2026-02-01T00:00:00Z"}, "timezone"),
        ({"seller_tax_id": "X", "issued_from": "2026-01-01T00:00:00Z", "issued_to": "2026-02-01T00:00:00Z", "page": "0"}, "page"),
    ],
)  # fmt: skip
def test_bad_listing_queries(sandbox: Running, query: dict, fragment: str) -> None:  # type: ignore[type-arg]
    response = httpx.get(f"{sandbox.url}/v1/invoices", params=query, timeout=5)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert fragment in response.json()["message"]


def test_unknown_route_and_method(sandbox: Running) -> None:
    response = httpx.get(f"{sandbox.url}/v2/whatever", timeout=5)
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    response = httpx.delete(f"{sandbox.url}/v1/invoices", timeout=5)
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_too_large(sandbox: Running) -> None:
    response = httpx.post(
        f"{sandbox.url}/v1/invoices", content=b"[" + b"1," * 5_000_000 + b"1]",
        headers={"content-type": "application/json"}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 413 and response.json()["code"] == "too_large"
