"""The Grafana dashboard and the alert rules only name metrics kaipiao exports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from kaipiao.observability.metrics import Metrics
from kaipiao.services.status import Snapshot
from kaipiao.store.database import TransactionStats

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bkaipiao_[a-z_]+")


def _exported() -> set[str]:
    metrics = Metrics()
    metrics.watch_transactions(TransactionStats())
    now = datetime.now(UTC)
    snap = Snapshot(now, {"queued": 1}, 3.0, 1, 0, 300.0, 10, 2, 0.0,
                    [("w1", now, {"breakers": {"31": "open"}, "limits": {"31": 20},
                                  "in_flight": 1})])  # fmt: skip
    snap.warnings = [{"signal": "latency_p95:31", "since": 0.0, "last": 0.0, "value": 6.0,
                      "baseline": 0.5, "score": 1.0, "source": "w1"}]  # fmt: skip
    metrics.watch_snapshot(lambda: snap)
    metrics.call("issue", "31", "issued", 0.8)
    metrics.issued(12.0)
    metrics.http_duration.labels("/v1/invoices", "POST", "202").observe(0.01)
    metrics.intake_accepted.labels("accepted").inc()
    metrics.intake_refused.labels("rate_limited").inc()
    text = metrics.render().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_the_dashboard_is_grafana_json_over_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/kaipiao.json").read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36 and dashboard["panels"]
    exported = _exported()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in NAME.findall(target["expr"]):
                assert name in exported, (panel["title"], name)


def test_alert_rules_name_exported_metrics() -> None:
    lines = (ROOT / "deploy/prometheus/alerts.yml").read_text().splitlines()
    rules = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    exported = _exported()
    named = {n for n in NAME.findall(rules) if not n.startswith("kaipiao_slo")}
    assert named and named <= exported, named - exported
