"""Every drill scenario with real processes, as `kaipiao drill` runs them: all eight on SQLite,
and db-restart, region-outage and `surge --compare --html` on PostgreSQL too.

In CI each runs a short load (10 s, the shortest `kaipiao drill` accepts; a few faster or longer
so that the fault happens often enough to be seen and measured). Each asserts the drill's own verdict (exit 0: every invariant held against the
sandbox's ground truth) and that the fault really happened — answers lost, calls failed or hung,
processes killed, a surge sent — so a drill that silently skipped its fault cannot pass. No test
bounds wall-clock time: a slow machine drains later, and the drill's own drain timeout decides.

The documented lengths (60 s at 20/s, the drill's defaults) are marked `full_length` and run only
when selected: `scripts/test -m full_length tests/e2e/test_drills.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.processes import KAIPIAO, clean_env

Report = dict[str, Any]
# db-restart on PostgreSQL restarts the server: a developer whose tests share it with others can
# point this at a private cluster (`pg_ctlcluster 15 NAME restart`) and KAIPIAO_TEST_PG at it.
RESTART = os.environ.get("TEST_PG_RESTART_COMMAND")


def pg_store(request: pytest.FixtureRequest) -> list[str]:
    from tests.databases import _run, truncate_all

    url: str = request.getfixturevalue("pg_session_url")
    _run(truncate_all(url))
    flags = ["--database-url", url.replace("+asyncpg", "")]
    return flags + (["--restart-command", RESTART] if RESTART else [])


def drill(tmp_path: Path, scenario: str, *flags: str) -> tuple[int, Report, str]:
    out = tmp_path / "drill.json"
    done = subprocess.run(
        [*KAIPIAO, "drill", scenario, "--seed", "7", "--json", str(out),
         "--work-dir", str(tmp_path / "work"), "--drain-timeout", "60", *flags],
        env=clean_env(COLUMNS="120"), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    report = json.loads(out.read_text()) if out.exists() else {}
    return done.returncode, report, done.stdout + done.stderr


def issue_calls(kaipiao: Report, outcome: str) -> int:
    return sum(n for call, n in kaipiao["platform_calls"].items() if call.startswith(outcome))


# What shows that each scenario's fault happened, from the drill's own report (and work dir).
def surge(k: Report, rate: float, duration: float, work: Path) -> None:
    assert k["sent"] >= 2 * rate * duration, k["sent"]  # 10× the rate for 30% of the time
    assert k["backlog_peak"] > 0


def slow_platform(k: Report, rate: float, duration: float, work: Path) -> None:
    assert k["issue_p99"] >= 4.0, k["issue_p99"]  # the heavy tail (calm p99 is ~2 s)


def failure_spike(k: Report, rate: float, duration: float, work: Path) -> None:
    assert issue_calls(k, "issue:failure_") >= 3, k["platform_calls"]


def outage(k: Report, rate: float, duration: float, work: Path) -> None:
    assert issue_calls(k, "issue:outage") + issue_calls(k, "query:outage") >= 1, k["platform_calls"]


def ambiguous(k: Report, rate: float, duration: float, work: Path) -> None:
    assert issue_calls(k, "issue:ambiguous_drop") >= 3, k["platform_calls"]
    assert issue_calls(k, "query:issued") >= issue_calls(k, "issue:ambiguous_drop")


def worker_crash(k: Report, rate: float, duration: float, work: Path) -> None:
    assert k["crashes"] >= 1
    # Every killed worker was replaced: one `issuing` banner per start.
    assert (work / "workers.log").read_text().count("issuing") >= 2 + k["crashes"]


def db_restart(k: Report, rate: float, duration: float, work: Path) -> None:
    assert k["crashes"] >= 1


def region_outage(k: Report, rate: float, duration: float, work: Path) -> None:
    assert issue_calls(k, "issue:hang") >= 1, k["platform_calls"]
    assert any(c["name"] == "region 31 unaffected" and c["ok"] for c in k["checks"])


Evidence = Callable[[Report, float, float, Path], None]
# scenario → (CI rate, CI duration, evidence). The shortest drill `kaipiao drill` accepts is
# 10 s; rate or length is raised where a rarer fault needs more calls to show.
SCENARIOS: dict[str, tuple[float, float, Evidence]] = {
    "surge": (10, 10, surge),
    "slow-platform": (10, 10, slow_platform),
    "failure-spike": (30, 10, failure_spike),  # 8.7% of ~90 calls in the window
    "outage": (10, 10, outage),
    "ambiguous": (20, 10, ambiguous),  # 20% of ~60 calls in the window
    "worker-crash": (10, 10, worker_crash),
    "db-restart": (10, 10, db_restart),
    # The drill compares province 31's p99 with its calm p99 (nearest rank): under 50 samples in
    # the window that is the maximum, and one retried invoice fails it (measured at 10 s, 10/s).
    # 6 s of fault at 30/s gives ~90.
    "region-outage": (30, 20, region_outage),
}
ON_POSTGRESQL = ("db-restart", "region-outage", "worker-crash")


def check(tmp_path: Path, scenario: str, rate: float, duration: float, *store: str) -> Report:
    code, report, output = drill(tmp_path, scenario, "--duration", f"{duration:g}",
                                 "--rate", f"{rate:g}", *store)  # fmt: skip
    assert code == 0, output
    assert report["passed"] is True and "all invariants hold" in output
    k: Report = report["kaipiao"]
    assert k["sent"] > 0 and k["lost"] == k["duplicates"] == k["waiting"] == 0, k
    assert k["issued"] + k["rejected"] == k["accepted"], k
    if scenario != "db-restart":  # callers may be refused while the store restarts
        assert k["accepted"] == k["sent"], k
    SCENARIOS[scenario][2](k, rate, duration, tmp_path / "work")
    return k


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_drill_on_sqlite(tmp_path: Path, scenario: str) -> None:
    rate, duration, _ = SCENARIOS[scenario]
    check(tmp_path, scenario, rate, duration)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("scenario", ON_POSTGRESQL)
def test_drill_on_postgresql(tmp_path: Path, scenario: str, request: pytest.FixtureRequest) -> None:
    rate, duration, _ = SCENARIOS[scenario]
    check(tmp_path, scenario, rate, duration, *pg_store(request))


@pytest.mark.slow
@pytest.mark.postgres
def test_surge_compared_with_the_naive_gateway_and_charted(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    html = tmp_path / "surge.html"
    code, report, output = drill(tmp_path, "surge", "--duration", "10", "--rate", "10",
                                 "--compare", "--html", str(html), *pg_store(request))  # fmt: skip
    assert code == 0, output
    assert report["passed"] is True
    surge(report["kaipiao"], 10, 10, tmp_path / "work")
    naive = report["naive"]
    assert naive["sent"] == report["kaipiao"]["sent"]  # the same load, side by side
    page = html.read_text()
    assert page.count("<svg") == page.count("</svg>") == 3  # throughput, latency, backlog
    for chart in ("Throughput", "Intake latency", "Backlog"):
        assert f'aria-label="{chart}' in page, chart
    assert "naive: issued/s" in page and "<path d=" in page
    assert "kaipiao" in output and "naive" in output


@pytest.mark.slow
@pytest.mark.full_length
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_drill_at_its_documented_length(tmp_path: Path, scenario: str) -> None:
    check(tmp_path, scenario, 20.0, 60.0)


def test_an_unknown_scenario_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    done = subprocess.run([*KAIPIAO, "drill", "meteor"], env=clean_env(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "unknown scenario 'meteor'" in done.stderr
    for scenario in SCENARIOS:
        assert scenario in done.stderr, scenario
