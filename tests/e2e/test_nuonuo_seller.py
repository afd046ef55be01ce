"""A Nuonuo seller end to end: registered with the CLI (secret from the environment, token
encrypted), `kaipiao serve` routes its invoices to the Nuonuo front of a sandbox process while
another seller stays on the default platform."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx

from tests.factories import OTHER_SELLER_TAX_ID, SELLER_TAX_ID, invoice_body
from tests.processes import kaipiao, start_sandbox, start_serve


def test_a_nuonuo_seller_issues_through_its_own_account(tmp_path: Path) -> None:
    sandbox = start_sandbox("--profile", "ideal", "--nuonuo-app", "shop-app:shop-secret")
    try:
        added = json.loads(kaipiao(
            "seller", "add", "--name", "诺诺店", "--tax-id", SELLER_TAX_ID, "--platform", "nuonuo",
            "--app-key", "shop-app", "--app-secret", "env:SHOP_NUONUO_SECRET",
            "--access-token", "token-123", "--json", cwd=tmp_path,
        ).stdout)  # fmt: skip
        plain = json.loads(kaipiao("seller", "add", "--name", "默认", "--tax-id",
                                   OTHER_SELLER_TAX_ID, "--json", cwd=tmp_path).stdout)  # fmt: skip
        listing = kaipiao("seller", "list", "--json", cwd=tmp_path).stdout
        platforms = {s["tax_id"]: s["platform"] for s in json.loads(listing)}
        assert platforms == {SELLER_TAX_ID: "nuonuo", OTHER_SELLER_TAX_ID: "default"}
        # Stored: the env reference as given, the token encrypted, neither in the clear.
        stored = sqlite3.connect(tmp_path / "kaipiao-data" / "kaipiao.db").execute(
            "select settings from seller_platforms").fetchone()[0]  # fmt: skip
        settings = json.loads(stored)
        assert settings["app_secret"] == "env:SHOP_NUONUO_SECRET"
        assert settings["access_token"].startswith("enc:") and "token-123" not in stored
        serve = start_serve(tmp_path, "--platform-url", sandbox.url, "--no-demo-seller", env={
            "SHOP_NUONUO_SECRET": "shop-secret",
            "KAIPIAO_NUONUO_URL": f"{sandbox.url}/open/v1/services",
        })  # fmt: skip
        try:
            ids = {}
            for who, key in (("nuonuo", added["api_key"]), ("default", plain["api_key"])):
                r = httpx.post(f"{serve.url}/v1/invoices", json=invoice_body(f"NN-{who}"),
                               headers={"Authorization": f"Bearer {key}"}, timeout=10)  # fmt: skip
                assert r.status_code == 202, r.text
                ids[who] = (r.json()["id"], key)
            deadline = time.monotonic() + 30
            done: dict[str, dict] = {}  # type: ignore[type-arg]
            while time.monotonic() < deadline and len(done) < 2:
                for who, (invoice_id, key) in ids.items():
                    got = httpx.get(f"{serve.url}/v1/invoices/{invoice_id}",
                                    headers={"Authorization": f"Bearer {key}"}).json()  # fmt: skip
                    if got["status"] == "issued":
                        done[who] = got
                time.sleep(0.3)
            assert set(done) == {"nuonuo", "default"}, done
            assert "token-123" not in serve.output() and "shop-secret" not in serve.output()
        finally:
            serve.stop()
        calls = httpx.get(f"{sandbox.url}/_sandbox/stats").json()["calls"]
        assert calls.get("nuonuo.issue:issued", 0) == 1  # the Nuonuo seller's, on its front
        assert calls.get("issue:issued", 0) == 1  # the other seller's, on the sandbox protocol
    finally:
        sandbox.stop()


def test_nuonuo_flags_are_checked(tmp_path: Path) -> None:
    missing = kaipiao("seller", "add", "--name", "x", "--tax-id", SELLER_TAX_ID, "--platform",
                      "nuonuo", "--app-key", "k", cwd=tmp_path, check=False)  # fmt: skip
    assert (
        missing.returncode == 2
        and "needs --app-key, --app-secret and --access-token" in missing.stderr
    )
    stray = kaipiao("seller", "add", "--name", "x", "--tax-id", SELLER_TAX_ID, "--app-key", "k",
                    cwd=tmp_path, check=False)  # fmt: skip
    assert stray.returncode == 2 and "need --platform nuonuo" in stray.stderr
    unknown = kaipiao("seller", "add", "--name", "x", "--tax-id", SELLER_TAX_ID, "--platform",
                      "baiwang", cwd=tmp_path, check=False)  # fmt: skip
    assert unknown.returncode == 2 and "--platform must be one of default, nuonuo" in unknown.stderr
