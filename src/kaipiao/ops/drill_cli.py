"""`kaipiao drill` on a terminal: a progress bar while it runs, then the report (and files)."""

from __future__ import annotations

import asyncio
import json
import shlex
import tempfile
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kaipiao.ops.drill import run_drill
from kaipiao.ops.drill_config import DrillConfig, DrillReport, default_restart_command
from kaipiao.ops.drill_report import print_report, render_html
from kaipiao.ops.scenarios import Scenario


def report_json(report: DrillReport) -> dict[str, object]:
    """The measured figures (not the per-second series) for scripts and CI logs."""
    out: dict[str, object] = {"scenario": report.config.scenario.name, "passed": report.passed}
    for result in report.results:
        figures = asdict(result)
        figures.pop("timeline")
        figures.pop("per_second")
        out[result.gateway] = figures
    return out


def run_drill_command(
    scenario: Scenario,
    *,
    duration: float,
    rate: float,
    seed: int,
    database_url: str | None,
    compare: bool,
    html: Path | None,
    json_out: Path | None,
    work_dir: Path | None,
    drain_timeout: float,
    restart_command: str | None,
) -> bool:
    """Run the drill with a progress bar; print the report; write the files asked for."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="kaipiao-drill-") as tmp:
        config = DrillConfig(
            scenario=scenario, work_dir=work_dir or Path(tmp), duration_s=duration, rate=rate,
            seed=seed, database_url=database_url, compare=compare, drain_timeout_s=drain_timeout,
            restart_command=tuple(shlex.split(restart_command)) if restart_command
            else default_restart_command(),
        )  # fmt: skip
        counts = TextColumn(
            "sent {task.fields[sent]}  accepted {task.fields[accepted]}  "
            "issued {task.fields[issued]}  backlog {task.fields[backlog]}"
        )
        columns = (TextColumn("{task.description:<18}"), BarColumn(), TimeElapsedColumn(), counts)
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("starting", total=duration, sent=0, accepted=0, issued=0,
                                backlog=0)  # fmt: skip

            def progress(phase: str, elapsed: float, total: float, counts: dict[str, int]) -> None:
                bar.update(task, description=phase, completed=min(elapsed, duration),
                           sent=counts["sent"], accepted=counts["accepted"],
                           issued=counts["issued"], backlog=counts["backlog"])  # fmt: skip

            try:
                report = asyncio.run(run_drill(config, progress))
            except Exception as exc:
                console.print(f"[red]error:[/red] the drill could not run: {exc}")
                if work_dir is None:
                    console.print("(run again with --work-dir DIR to keep the processes' logs)")
                return False
    print_report(report, console)
    if html is not None:
        html.write_text(render_html(report), encoding="utf-8")
        console.print(f"HTML report: {html}")
    if json_out is not None:
        json_out.write_text(json.dumps(report_json(report), indent=2, default=str))
    return report.passed
