"""A drill's settings and report: what `kaipiao drill` was asked to run, and what it found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kaipiao.ops.drill_result import (
    Result,
    Window,
)
from kaipiao.ops.drill_warning import day_factor
from kaipiao.ops.scenarios import FAULT_END, FAULT_START, Scenario

REGIONS = ("31", "44")
CRASH_EVERY_S = 3.0
LEASE_S = 3.0
READY_SANDBOX = r"listening on (http://\S+)"
READY_API = r"kaipiao listening on (http://\S+)"
READY_WORKER = r"kaipiao worker (\S+) issuing"
READY_NAIVE = r"naive gateway listening on (http://\S+)"

Progress = Callable[[str, float, float, dict[str, int]], None]  # phase, elapsed, total, counts


def default_restart_command() -> tuple[str, ...]:
    """Restart the local PostgreSQL cluster (Debian's pg_ctlcluster)."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*"))
    version = versions[-1] if versions else "15"
    return ("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart")


@dataclass(frozen=True, slots=True)
class DrillConfig:
    scenario: Scenario
    work_dir: Path
    duration_s: float = 60.0
    rate: float = 20.0
    seed: int = 1
    database_url: str | None = None
    compare: bool = False
    client_timeout_s: float = 5.0
    drain_timeout_s: float = 120.0
    restart_command: tuple[str, ...] = field(default_factory=default_restart_command)

    @property
    def window(self) -> Window:
        d = self.duration_s
        return Window(d * FAULT_START, d * FAULT_END, d)

    @property
    def quota_per_seller(self) -> float | None:
        x = self.scenario.quota_x
        return None if x is None else self.rate * x / len(REGIONS)

    def base_knobs(self) -> dict[str, Any]:
        """The sandbox's calm: the scenario's base, its dedup, and the quota if it has one."""
        s = self.scenario
        knobs: dict[str, Any] = {**s.base, "profile": "ideal", "dedup": s.dedup}
        quota = self.quota_per_seller
        if quota is not None:
            knobs |= {"quota_per_s": quota, "quota_burst": max(5, int(quota))}
        return knobs

    def rate_at(self, t: float) -> float:
        if self.scenario.daily:
            return self.rate * day_factor(t / self.duration_s)
        w = self.window
        inside = w.fault_start <= t < w.fault_end
        return self.rate * (self.scenario.rate_factor if inside else 1.0)


@dataclass(slots=True)
class DrillReport:
    config: DrillConfig
    results: list[Result]
    started: datetime

    @property
    def passed(self) -> bool:
        return self.results[0].passed
