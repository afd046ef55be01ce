"""`kaipiao serve` probed from outside as in issue 21: what it writes to disk and prints, how it
treats slow, vanishing and write-first clients, and whom it believes about client addresses."""

from __future__ import annotations

import http.client
import json
import socket
import stat
import time
from pathlib import Path

import httpx

from tests.processes import kaipiao, start_sandbox, start_serve


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private_and_no_live_key_is_printed(tmp_path: Path) -> None:
    serve = start_serve(tmp_path)
    try:
        key = kaipiao("seller", "demo-key", cwd=tmp_path).stdout.strip()
        assert key.startswith("kp_") and key not in serve.output()
        assert "seller demo-key" in serve.output()  # the curl asks the explicit command
        response = httpx.post(f"{serve.url}/v1/invoices", json=json.loads(
            '{"order_id": "P-1", "buyer": {"name": "某公司"}, "lines": [{"name": "咨询", '
            '"tax_code": "3040201990000000000", "quantity": "1", "unit_price": "1", '
            '"tax_rate": "0.06"}]}'), headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        assert response.status_code == 202
    finally:
        serve.stop()
    data = tmp_path / "kaipiao-data"
    assert _mode(data) == 0o700
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"kaipiao.db", "demo-seller.json", "ledger-key.pem"}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_looser_files_are_warned_about_at_start(tmp_path: Path) -> None:
    data = tmp_path / "kaipiao-data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    serve = start_serve(tmp_path, "--no-demo-seller")
    try:
        assert "readable by others" in serve.output()
    finally:
        serve.stop()


def test_no_demo_seller_against_a_configured_platform(tmp_path: Path) -> None:
    sandbox = start_sandbox()
    try:
        serve = start_serve(tmp_path, "--platform-url", sandbox.url)
        try:
            assert "demo seller" not in serve.output()
        finally:
            serve.stop()
    finally:
        sandbox.stop()
    listed = json.loads(kaipiao("seller", "list", "--json", cwd=tmp_path).stdout)
    assert listed == []


def test_slow_vanishing_and_write_first_clients(tmp_path: Path) -> None:
    serve = start_serve(tmp_path, "--no-demo-seller",
                        env={"KAIPIAO_HEADER_TIMEOUT_S": "1", "KAIPIAO_BODY_TIMEOUT_S": "2"})  # fmt: skip
    created = json.loads(kaipiao("seller", "add", "--name", "甲", "--tax-id",
                                 "91310110666007217T", "--json", cwd=tmp_path).stdout)  # fmt: skip
    auth = f"Bearer {created['api_key']}"
    host, port = serve.url.removeprefix("http://").split(":")
    try:
        # A connection that never sends its headers is closed.
        with socket.create_connection((host, int(port)), timeout=10) as idle:
            idle.sendall(b"POST /v1/invoices HTTP/1.1\r\nHost: x\r\n")
            assert idle.recv(100) == b""  # closed by the server (a timeout here fails)
        # A client that goes away mid-body: not a 5xx, not "store unavailable".
        with socket.create_connection((host, int(port)), timeout=10) as gone:
            gone.sendall(f"POST /v1/invoices HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                         "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
                         .encode())  # fmt: skip
        deadline = time.monotonic() + 20
        metrics = ""
        while time.monotonic() < deadline and 'status="499"' not in metrics:
            metrics = httpx.get(f"{serve.url}/metrics").text
            time.sleep(0.1)
        assert 'status="499"' in metrics and 'status="503"' not in metrics
        assert "store unavailable" not in serve.output()
        # A write-first client (http.client) with a 3 MiB body reads the 413.
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/v1/invoices", body=b"x" * (3 * 1024 * 1024),
                     headers={"Authorization": auth, "Content-Type": "application/json"})  # fmt: skip
        answer = conn.getresponse()
        assert answer.status == 413 and json.loads(answer.read())["code"] == "payload_too_large"
        conn.close()
    finally:
        serve.stop()


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path: Path) -> None:
    created = json.loads(kaipiao("seller", "add", "--name", "甲", "--tax-id",
                                 "91310110666007217T", "--allow-network", "10.0.0.0/8",
                                 "--json", cwd=tmp_path).stdout)  # fmt: skip
    headers = {"Authorization": f"Bearer {created['api_key']}", "X-Forwarded-For": "10.1.2.3"}
    for env, status in (({}, 403), ({"KAIPIAO_TRUSTED_PROXIES": "127.0.0.1/32"}, 200)):
        serve = start_serve(tmp_path, "--no-demo-seller", env=env)
        try:
            assert httpx.get(f"{serve.url}/v1/invoices", headers=headers).status_code == status
        finally:
            serve.stop()
