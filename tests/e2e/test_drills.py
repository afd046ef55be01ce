"""Short drills with real processes, as `kaipiao drill` runs them, on SQLite and PostgreSQL.

Each asserts the drill's own verdict (exit status 0: every invariant held against the sandbox's
ground truth) and that the fault really happened: answers were lost on the platform, or workers
were killed, so a drill that silently skipped its fault cannot pass.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import KAIPIAO, clean_env

DURATION_S = "30"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "sqlite":
        return []
    from tests.databases import _run, truncate_all

    url: str = request.getfixturevalue("pg_session_url")
    _run(truncate_all(url))
    return ["--database-url", url.replace("+asyncpg", "")]


def drill(tmp_path: Path, scenario: str, store: list[str], *extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    out = tmp_path / "drill.json"
    started = time.monotonic()
    done = subprocess.run(
        [*KAIPIAO, "drill", scenario, "--duration", DURATION_S, "--rate", "20", "--seed", "7",
         "--json", str(out), "--work-dir", str(tmp_path / "work"), "--drain-timeout", "40",
         *store, *extra],
        env=clean_env(COLUMNS="120"), capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    took = time.monotonic() - started
    assert took < 90, f"the drill took {took:.0f} s; CI allows 90"
    report = json.loads(out.read_text()) if out.exists() else {}
    return done.returncode, report, done.stdout + done.stderr


@pytest.mark.slow
def test_ambiguous_drill_holds_every_invariant(tmp_path: Path, store: list[str]) -> None:
    code, report, output = drill(tmp_path, "ambiguous", store)
    assert code == 0, output
    kaipiao = report["kaipiao"]
    assert report["passed"] is True
    # The fault happened: the platform issued invoices and dropped their answers.
    assert kaipiao["platform_calls"].get("issue:ambiguous_drop", 0) >= 5, kaipiao["platform_calls"]
    assert kaipiao["accepted"] == kaipiao["sent"] >= 550
    assert kaipiao["issued"] == kaipiao["accepted"]
    assert kaipiao["duplicates"] == kaipiao["lost"] == kaipiao["waiting"] == 0
    assert "all invariants hold" in output
    assert "no duplicates" in output


@pytest.mark.slow
def test_worker_crash_drill_holds_every_invariant(tmp_path: Path, store: list[str]) -> None:
    code, report, output = drill(tmp_path, "worker-crash", store)
    assert code == 0, output
    kaipiao = report["kaipiao"]
    # Workers were killed every 3 s of the 9 s fault window, while invoices were in flight.
    assert kaipiao["crashes"] >= 3
    assert kaipiao["issued"] == kaipiao["accepted"] == kaipiao["sent"] >= 550
    assert kaipiao["duplicates"] == kaipiao["lost"] == 0
    assert (tmp_path / "work" / "workers.log").read_text().count("issuing") >= 5


def test_an_unknown_scenario_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    done = subprocess.run([*KAIPIAO, "drill", "meteor"], env=clean_env(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "unknown scenario 'meteor'" in done.stderr
    assert "worker-crash" in done.stderr
