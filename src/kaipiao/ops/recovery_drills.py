"""The recovery drills by name, and the one call `kaipiao drill` makes for them."""

from __future__ import annotations

import functools
import shlex
from pathlib import Path

from kaipiao.ops.drill_config import DrillConfig, DrillReport, Progress
from kaipiao.ops.drill_failover import FAILOVER, run_failover
from kaipiao.ops.drill_restore import RESTORE, run_restore
from kaipiao.ops.recovery_cli import run_recovery_command
from kaipiao.ops.recovery_report import Recovery

RECOVERY = {FAILOVER.name: FAILOVER, RESTORE.name: RESTORE}


def run_recovery(
    name: str,
    *,
    duration: float,
    rate: float,
    seed: int,
    database_url: str | None,
    html: Path | None,
    json_out: Path | None,
    work_dir: Path | None,
    drain_timeout: float,
    sync: bool,
    promote_after: float,
) -> bool:
    """Run the recovery drill `name` from the command line; True if every check held."""
    parts = ["kaipiao", "drill", name, "--duration", f"{duration:g}", "--rate", f"{rate:g}",
             "--seed", str(seed)]  # fmt: skip
    if name == FAILOVER.name:
        parts += ["--sync"] if sync else []
        parts += ["--promote-after", f"{promote_after:g}"]

        async def runner(config: DrillConfig, progress: Progress) -> tuple[DrillReport, Recovery]:
            return await run_failover(config, sync=sync, promote_after_s=promote_after,
                                      progress=progress)  # fmt: skip
    else:
        parts += ["--database-url", "…"] if database_url else []
        runner = functools.partial(run_restore, database_url=database_url)
    return run_recovery_command(
        RECOVERY[name], runner, duration=duration, rate=rate, seed=seed,
        database_url=None, html=html, json_out=json_out, work_dir=work_dir,
        drain_timeout=drain_timeout, repeat=shlex.join(parts),
    )  # fmt: skip
