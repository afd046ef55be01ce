"""`kaipiao serve` and the seller CLI as whole processes, as a user runs them."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.databases import pg_url
from tests.factories import invoice_body
from tests.processes import kaipiao, start_serve

ROOT = Path(__file__).resolve().parents[2]


def readme_curl() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quick-start-curl -->\s*```sh\n(.*?)```", text, re.S)
    assert block, "README lost its quick-start curl block"
    return block.group(1).rstrip()


def user_dir(tmp_path: Path) -> Path:
    """A directory laid out like a clone after the README's install: `.venv/bin/kaipiao` works."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kaipiao").symlink_to(Path(sys.executable).parent / "kaipiao")
    return tmp_path


def test_readme_quick_start_curl_works_word_for_word(tmp_path: Path) -> None:
    cwd = user_dir(tmp_path)
    serve = start_serve(cwd)
    try:
        assert "demo seller" in serve.output() and "curl -s" in serve.output()
        port = serve.url.rsplit(":", 1)[1]
        command = readme_curl().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        result = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"], cwd=cwd, capture_output=True,
            text=True, check=True, timeout=30,
        )  # fmt: skip
        body, status = result.stdout.rsplit("\n", 1)
        assert status == "202", result.stdout + result.stderr
        invoice = json.loads(body)
        assert invoice["status"] == "queued" and invoice["total"] == "1060.00"
        assert invoice["total_in_words"] == "壹仟零陆拾元整"
        again = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"], cwd=cwd, capture_output=True,
            text=True, check=True, timeout=30,
        )  # fmt: skip
        assert again.stdout.rsplit("\n", 1)[1] == "200"
    finally:
        serve.stop()


def test_an_accepted_invoice_survives_kill_9(tmp_path: Path) -> None:
    serve = start_serve(tmp_path)
    key = kaipiao("seller", "demo-key", cwd=tmp_path).stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    accepted = httpx.post(f"{serve.url}/v1/invoices", json=invoice_body("KILL-1"), headers=headers)
    assert accepted.status_code == 202
    serve.kill()
    restarted = start_serve(tmp_path)
    try:
        deadline = time.monotonic() + 10  # the banner's later lines follow "listening" shortly
        while "demo seller" not in restarted.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "demo seller" in restarted.output()
        found = httpx.get(f"{restarted.url}/v1/invoices/{accepted.json()['id']}", headers=headers)
        assert found.status_code == 200 and found.json()["order_id"] == "KILL-1"
    finally:
        restarted.stop()


def test_seller_cli(tmp_path: Path) -> None:
    added = kaipiao(
        "seller", "add", "--name", "上海甲公司", "--tax-id", "91310110666007217T", "--region", "31",
        "--quota", "50", "--invoice-limit", "100000", "--max-lines", "50", "--json",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    created = json.loads(added.stdout)
    assert created["seller_id"].startswith("sel_") and created["api_key"].startswith("kp_")
    listed = json.loads(kaipiao("seller", "list", "--json", "--data-dir", str(tmp_path)).stdout)
    assert listed == [{
        "seller_id": created["seller_id"], "name": "上海甲公司", "tax_id": "91310110666007217T",
        "region": "31", "quota_per_s": 50.0, "invoice_limit": "100000.00",
        "platform": "default", "limit_includes_tax": False, "max_lines": 50,
    }]  # fmt: skip
    assert created["api_key"] not in (tmp_path / "kaipiao.db").read_bytes().decode("latin-1")
    dup = kaipiao("seller", "add", "--name", "x", "--tax-id", "91310110666007217T",
                  "--data-dir", str(tmp_path), check=False)  # fmt: skip
    assert dup.returncode == 1 and "seller_exists" in dup.stderr
    bad = kaipiao("seller", "add", "--name", "x", "--tax-id", "123", "--data-dir", str(tmp_path),
                  check=False)  # fmt: skip
    assert bad.returncode == 1 and "invalid_seller_tax_id" in bad.stderr
    human = kaipiao("seller", "list", "--data-dir", str(tmp_path)).stdout
    assert "91310110666007217T" in human and "quota 50.0/s" in human


def test_settings_errors_are_clear(tmp_path: Path) -> None:
    result = kaipiao("migrate", "--database-url", "mysql://x/y", check=False)
    assert result.returncode == 2 and "database_url" in result.stderr
    env_result = subprocess.run(
        [sys.executable, "-m", "kaipiao", "migrate"], capture_output=True, text=True,
        env={**os.environ, "KAIPIAO_DATABASE_URL": "nope://"}, timeout=60,
    )  # fmt: skip
    assert env_result.returncode == 2 and "database_url" in env_result.stderr


@pytest.mark.postgres
def test_serve_on_postgresql(tmp_path: Path, pg_session_url: str) -> None:
    from tests.databases import _run, truncate_all

    _run(truncate_all(pg_session_url))
    url = pg_session_url.replace("postgresql+asyncpg://", "postgresql://")
    from kaipiao.store.migrate import head_revision

    assert f"revision {head_revision()}" in kaipiao("migrate", "--database-url", url).stdout
    created = json.loads(
        kaipiao(
            "seller",
            "add",
            "--name",
            "p",
            "--tax-id",
            "91310110666007217T",
            "--json",
            "--database-url",
            url,
        ).stdout
    )
    serve = start_serve(tmp_path, "--database-url", url, "--no-demo-seller")
    try:
        assert "postgresql+asyncpg://postgres@127.0.0.1" in serve.output()
        headers = {"Authorization": f"Bearer {created['api_key']}"}
        response = httpx.post(f"{serve.url}/v1/invoices", json=invoice_body(), headers=headers)
        assert response.status_code == 202
        assert httpx.get(f"{serve.url}/readyz").json() == {"status": "ready"}
    finally:
        serve.stop()
    assert pg_url("x")


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "kaipiao", "serve", "--port", str(port)], cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert "address already in use" in (result.stdout + result.stderr).lower()
