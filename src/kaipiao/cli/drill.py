"""`kaipiao drill`: replay a field incident with real processes and check the invariants."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kaipiao.cli.shared import fail, settings_from


def drill(
    scenario: Annotated[str, typer.Argument(help="Scenario name; see `kaipiao drill --help`.")],
    duration: Annotated[float, typer.Option(help="Seconds of load (the fault is 30–60%).")] = 60,
    rate: Annotated[float, typer.Option(help="Base arrivals, invoices/s.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the platform's random draws.")] = 1,
    database_url: Annotated[
        str | None, typer.Option(help="postgresql://… to drill on PostgreSQL (default SQLite).")
    ] = None,
    compare: Annotated[
        bool, typer.Option(help="Run the naive synchronous gateway too, side by side.")
    ] = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the measured figures as JSON here.")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep logs and the SQLite store here (default: temp).")
    ] = None,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the backlog after the load.")
    ] = 120.0,
    restart_command: Annotated[
        str | None, typer.Option(help="db-restart on PostgreSQL: the command that restarts it.")
    ] = None,
    sync: Annotated[
        bool, typer.Option(help="db-failover: a synchronous standby (RPO must be 0).")
    ] = False,
    promote_after: Annotated[
        float, typer.Option(help="db-failover: seconds from the kill to the promotion.")
    ] = 5.0,
) -> None:
    """Replay a field incident with real processes and check the invariants.

    Scenarios: surge, slow-platform, failure-spike, outage, ambiguous, worker-crash, db-restart,
    region-outage, clean; and the recovery drills db-failover (its own primary and standby:
    --sync, --promote-after) and restore (backup, destroy, restore, recover from the platform).
    Exit status 1 if any invariant breaks."""
    from kaipiao.ops.drill_cli import run_drill_command
    from kaipiao.ops.recovery_drills import RECOVERY
    from kaipiao.ops.scenarios import SCENARIOS

    if scenario not in SCENARIOS and scenario not in RECOVERY:
        fail(f"unknown scenario {scenario!r}; known: {', '.join([*SCENARIOS, *RECOVERY])}", 2)
    if duration < 10 or rate <= 0 or drain_timeout < 0 or promote_after < 0:
        fail("--duration must be at least 10 s, --rate positive, --drain-timeout and "
             "--promote-after ≥ 0", 2)  # fmt: skip
    url = None
    if database_url is not None:
        url = settings_from(database_url=database_url).database_url
    if scenario in RECOVERY:
        from kaipiao.ops.recovery_drills import run_recovery

        ok = run_recovery(
            scenario, duration=duration, rate=rate, seed=seed, database_url=database_url,
            html=html, json_out=json_out, work_dir=work_dir, drain_timeout=drain_timeout,
            sync=sync, promote_after=promote_after,
        )  # fmt: skip
        raise typer.Exit(0 if ok else 1)
    ok = run_drill_command(
        SCENARIOS[scenario], duration=duration, rate=rate, seed=seed, database_url=url,
        compare=compare, html=html, json_out=json_out, work_dir=work_dir,
        drain_timeout=drain_timeout, restart_command=restart_command,
    )  # fmt: skip
    raise typer.Exit(0 if ok else 1)
