"""The recovery drills as `kaipiao drill` runs them: the PostgreSQL primary lost for good
(db-failover, synchronous and asynchronous standby) and the store restored from a backup
(restore, on SQLite and PostgreSQL). Each asserts the drill's verdict and that the incident
really happened (refused requests, a backup, invoices recovered), so a drill that skipped its
fault cannot pass."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.processes import KAIPIAO, clean_env


def drill(tmp_path: Path, *args: str, duration: str = "20") -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "drill.json"
    done = subprocess.run(
        [*KAIPIAO, "drill", *args, "--duration", duration, "--rate", "20", "--seed", "3",
         "--json", str(out), "--work-dir", str(tmp_path / "work"), "--drain-timeout", "40"],
        env=clean_env(COLUMNS="160"), capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    report = json.loads(out.read_text()) if out.exists() else {}
    return done.returncode, report, done.stdout + done.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["--sync", "--no-sync"])
def test_db_failover_keeps_every_acknowledged_invoice_and_issues_each_once(
    tmp_path: Path, mode: str
) -> None:
    code, report, output = drill(tmp_path, "db-failover", mode, "--promote-after", "3")
    assert code == 0, output
    kaipiao, recovery = report["kaipiao"], report["recovery"]
    assert recovery["mode"] == ("sync" if mode == "--sync" else "async")
    assert kaipiao["duplicates"] == 0
    assert kaipiao["internal_errors"] == 0 and kaipiao["timeouts"] == 0
    assert kaipiao["server_errors"] > 0, "the primary's loss refused nobody: no failover happened"
    assert recovery["retried"] == recovery["retried_ok"] == kaipiao["server_errors"]
    assert recovery["promoted_at_s"] - recovery["killed_at_s"] >= 3
    assert recovery["rto_accepting_s"] is not None
    assert recovery["ledger_ok"]
    if mode == "--sync":
        assert recovery["rpo_invoices"] == 0
        assert kaipiao["lost"] == 0
    assert "RPO:" in output and "RTO accepting again" in output


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.full_length  # 90 s: `scripts/test -m full_length tests/e2e/test_recovery_drills.py`
def test_db_failover_sync_for_a_minute_meets_the_issue_bounds(tmp_path: Path) -> None:
    code, report, output = drill(tmp_path, "db-failover", "--sync", duration="60")
    assert code == 0, output
    kaipiao, recovery = report["kaipiao"], report["recovery"]
    assert kaipiao["duplicates"] == kaipiao["lost"] == kaipiao["internal_errors"] == 0
    assert recovery["rpo_invoices"] == 0
    outage = recovery["promoted_at_s"] - recovery["killed_at_s"]
    assert recovery["rto_accepting_s"] - outage <= 30


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "sqlite":
        return []
    from tests.databases import PG_SERVER

    return ["--database-url", f"postgresql://{PG_SERVER}/test"]  # the drill makes its own database


def test_restore_recovers_what_the_platform_issued_and_names_what_is_lost(
    tmp_path: Path, store: list[str]
) -> None:
    code, report, output = drill(tmp_path, "restore", *store)
    assert code == 0, output
    kaipiao, recovery = report["kaipiao"], report["recovery"]
    assert kaipiao["duplicates"] == 0
    assert recovery["backup_at_s"] is not None and recovery["recovered"] > 0
    # Some invoices were accepted while the platform was down, just before the store was lost.
    assert recovery["rpo_invoices"] == len(recovery["rpo_named"]) > 0
    assert "rolled back to event" in recovery["ledger_verdict"]
    checks = {c["name"]: c["ok"] for c in kaipiao["checks"]}
    assert checks["every invoice the platform issued is in the store"]
    assert checks["lost = acknowledged after the backup, never on the platform"]
