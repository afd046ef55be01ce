"""The recovery drills (`db-failover`, `restore`) on a terminal: progress, then the usual drill
report with the recovery figures under it, and the same --json / --html files as other drills."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kaipiao.ops.drill_cli import report_json
from kaipiao.ops.drill_config import DrillConfig, DrillReport
from kaipiao.ops.drill_config import Progress as ProgressFn
from kaipiao.ops.drill_report import print_report, render_html
from kaipiao.ops.recovery_report import Recovery, html_section, print_recovery
from kaipiao.ops.scenarios import Scenario

Runner = Callable[[DrillConfig, ProgressFn], Coroutine[Any, Any, tuple[DrillReport, Recovery]]]


def run_recovery_command(
    scenario: Scenario,
    runner: Runner,
    *,
    duration: float,
    rate: float,
    seed: int,
    database_url: str | None,
    html: Path | None,
    json_out: Path | None,
    work_dir: Path | None,
    drain_timeout: float,
    repeat: str,
) -> bool:
    """Run a recovery drill with a progress bar; print and write its report."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="kaipiao-drill-") as tmp:
        config = DrillConfig(scenario=scenario, work_dir=work_dir or Path(tmp),
                             duration_s=duration, rate=rate, seed=seed,
                             database_url=database_url, drain_timeout_s=drain_timeout)  # fmt: skip
        columns = (TextColumn("{task.description:<18}"), BarColumn(), TimeElapsedColumn(),
                   TextColumn("sent {task.fields[sent]}  accepted {task.fields[accepted]}  "
                              "backlog {task.fields[backlog]}"))  # fmt: skip
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("starting", total=duration, sent=0, accepted=0, backlog=0)

            def progress(phase: str, elapsed: float, total: float, counts: dict[str, int]) -> None:
                bar.update(task, description=phase, completed=min(elapsed, duration),
                           sent=counts["sent"], accepted=counts["accepted"],
                           backlog=counts["backlog"])  # fmt: skip

            try:
                report, figures = asyncio.run(runner(config, progress))
            except Exception as exc:
                console.print(f"[red]error:[/red] the drill could not run: {exc}")
                if work_dir is None:
                    console.print("(run again with --work-dir DIR to keep the processes' logs)")
                return False
    print_report(report, console)
    print_recovery(figures, console)
    console.print(f"(this drill: {repeat})", highlight=False, markup=False)
    if html is not None:
        page = render_html(report).replace("</body>", html_section(figures) + "</body>")
        html.write_text(page, encoding="utf-8")
        console.print(f"HTML report: {html}")
    if json_out is not None:
        out = report_json(report) | {"recovery": figures.to_json()}
        json_out.write_text(json.dumps(out, indent=2, default=str))
    return report.passed
