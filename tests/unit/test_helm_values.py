"""`kaipiao plan --helm-values`: a values file the chart renders with, its reasoning as comments."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from kaipiao.cli import app
from tests import chart


def test_plan_prints_chart_values_that_render_and_validate() -> None:
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "--invoices-per-day",
            "20000000",
            "--latency-p99",
            "8",
            "--quota",
            "3000",
            "--helm-values",
        ],
    )
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(result.output)
    # 20M a day at ×10 peak: 2,315/s, within the quota: more than 3 APIs and 2 workers.
    assert values["api"]["replicas"] > 3
    assert values["worker"]["replicas"] > 2
    assert values["api"]["pdb"]["minAvailable"] == values["api"]["replicas"] - 1
    assert values["platform"]["timeoutSeconds"] == 16
    # Every number is explained: the formula that gave it stands above it.
    assert "# worker processes: max(replicas 2," in result.output
    assert "# in-flight limit per worker:" in result.output
    docs = chart.check(chart.merged(chart.DEFAULTS, values))
    api = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-api")
    )
    assert api["spec"]["replicas"] == values["api"]["replicas"]
    assert (
        api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        == (values["api"]["terminationGracePeriodSeconds"])
    )


def test_small_forecast_keeps_three_api_replicas() -> None:
    result = CliRunner().invoke(app, ["plan", "--invoices-per-day", "1000", "--helm-values"])
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(result.output)
    assert values["api"]["replicas"] == 3 and values["worker"]["replicas"] == 2
