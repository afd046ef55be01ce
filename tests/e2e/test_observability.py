"""Observability against real processes: every metric on a running serve's /metrics, and a real
Prometheus scraping it that sees the breaker alert go pending when the platform goes down."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import invoice_body
from tests.processes import Running, kaipiao, start_sandbox, start_serve

ROOT = Path(__file__).resolve().parents[2]
METRICS = [
    "kaipiao_http_request_duration_seconds_bucket", "kaipiao_intake_accepted_total",
    "kaipiao_intake_refused_total", "kaipiao_invoices", "kaipiao_oldest_queued_age_seconds",
    "kaipiao_platform_calls_total", "kaipiao_platform_call_duration_seconds_bucket",
    "kaipiao_breaker_open", "kaipiao_breaker_state", "kaipiao_concurrency_limit",
    "kaipiao_retries_total", "kaipiao_db_commits_total", "kaipiao_db_rollbacks_total",
    "kaipiao_intake_to_issue_seconds_bucket", "kaipiao_incident_level", "kaipiao_active_sellers",
    "kaipiao_affected_sellers", "kaipiao_seller_quota_per_second", "kaipiao_ledger_events",
    "kaipiao_workers", "kaipiao_platform_in_flight", "kaipiao_webhook_backlog",
    "kaipiao_reconcile_deviation_ratio",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Running]:
    running = start_sandbox("--profile", "ideal", "--seed", "3", log=tmp_path / "sandbox.log")
    yield running
    running.stop()


def _metric_lines(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_and_a_real_prometheus_see_the_breaker_open(
    tmp_path: Path, platform: Running
) -> None:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed (scripts/services installs it)")
    serve = start_serve(tmp_path, "--platform-url", platform.url)
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        # No demo seller against a configured platform (issue 21): register one.
        added = kaipiao("seller", "add", "--name", "obs", "--tax-id", "91310110666007217T",
                        "--json", cwd=tmp_path).stdout  # fmt: skip
        headers = {"Authorization": f"Bearer {json.loads(added)['api_key']}"}
        for i in range(5):
            answer = httpx.post(f"{serve.url}/v1/invoices", json=invoice_body(f"OBS-{i}"),
                                headers=headers)  # fmt: skip
            assert answer.status_code == 202
        assert httpx.post(f"{serve.url}/v1/invoices", content=b"{", headers={
            **headers, "Content-Type": "application/json"}).status_code == 400  # fmt: skip
        _wait(lambda: "kaipiao_intake_to_issue_seconds_count 5.0" in _metric_lines(serve.url),
              30, "five invoices issued")  # fmt: skip
        _wait(lambda: 'status="issued"} 5.0' in _metric_lines(serve.url), 20, "the snapshot")
        _wait(lambda: "kaipiao_breaker_state{" in _metric_lines(serve.url), 20, "a heartbeat")
        text = _metric_lines(serve.url)
        missing = [name for name in METRICS if f"\n{name}" not in text]
        assert not missing, missing

        port = _free_port()
        target = serve.url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{ROOT / 'deploy/prometheus/alerts.yml'}']\n"
            "scrape_configs:\n"
            f"  - job_name: kaipiao\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        with (tmp_path / "prometheus.log").open("wb") as log:
            prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        api = f"http://127.0.0.1:{port}/api/v1"

        def scraped() -> bool:
            try:
                answer = httpx.get(f"{api}/query", params={"query": "up{job='kaipiao'}"}).json()
            except httpx.HTTPError:
                return False
            return any(r["value"][1] == "1" for r in answer["data"]["result"])

        _wait(scraped, 30, "Prometheus to scrape kaipiao")
        httpx.put(f"{platform.url}/_sandbox/faults", json={"profile": "outage"})
        for i in range(40):  # work for the breaker to refuse
            httpx.post(f"{serve.url}/v1/invoices", json=invoice_body(f"DOWN-{i}"), headers=headers)

        def breaker_alert() -> bool:
            alerts = httpx.get(f"{api}/alerts").json()["data"]["alerts"]
            return any(a["labels"]["alertname"] == "KaipiaoBreakerOpen"
                       and a["state"] in ("pending", "firing") for a in alerts)  # fmt: skip

        _wait(breaker_alert, 60, "KaipiaoBreakerOpen to become pending in Prometheus")
        status = kaipiao("status", cwd=tmp_path).stdout
        assert "=open" in status and "incident:" in status
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=20)
        serve.stop()
