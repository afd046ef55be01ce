"""The early warning in a drill: a working day's intake shape, what the processes warned and
when, and the verdict.

Each second the drill reads kaipiao's heartbeats (the workers' and the API's), which carry every
active warning with its exact `since` and the time each breaker first opened. The report gives
the first warning after the fault began, the breaker's first opening, and the lead time between
them. Verdicts: `slow-platform` and `failure-spike` must warn during the fault, before the
breaker first opens (their faults deepen part-way until the breaker does: `ESCALATE_AT` in
`kaipiao.ops.scenarios`); `clean` must not warn at all. Other scenarios only report.

Processes in a drill learn for `learn_s(duration)` seconds (a fifth of the run, 5–60 s) instead
of the default 60 s, so that a short CI drill has a calm to learn before its fault at 30%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kaipiao.ops.drill_result import Check, Result, Window

EXPECT_WARNING = frozenset({"slow-platform", "failure-spike"})
EXPECT_QUIET = frozenset({"clean"})

# A working day's intake, relative to its mean, per hour 0–23 (B2B invoicing: quiet nights, a
# morning ramp, a lunch dip, an afternoon peak, an evening tail). Mean 1.0; peak/trough ≈ 9.
DAY_SHAPE = (0.2, 0.17, 0.17, 0.17, 0.2, 0.27, 0.45, 0.85, 1.35, 1.65, 1.75, 1.6,
             1.2, 1.45, 1.7, 1.75, 1.6, 1.35, 1.0, 0.75, 0.6, 0.45, 0.33, 0.22)  # fmt: skip
_MEAN = sum(DAY_SHAPE) / len(DAY_SHAPE)


def day_factor(fraction: float) -> float:
    """The intake factor at `fraction` (0–1) of a day, linear between hours."""
    x = (fraction % 1.0) * 24
    i = math.floor(x)
    a, b = DAY_SHAPE[i], DAY_SHAPE[(i + 1) % 24]
    return (a + (b - a) * (x - i)) / _MEAN


def learn_s(duration_s: float) -> int:
    return int(min(60, max(5, duration_s / 5)))


@dataclass(slots=True)
class WarningLog:
    """What the heartbeats showed: the first `since` per signal and per breaker's region."""

    warnings: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, float] = field(default_factory=dict)

    def read(self, beats: list[tuple[str, Any, dict[str, Any]]]) -> None:
        for _, _, state in beats:
            for w in state.get("warnings", []):
                known = self.warnings.get(w["signal"])
                self.warnings[w["signal"]] = min(known, w["since"]) if known else w["since"]
            for region, at in state.get("breaker_first_open", {}).items():
                known = self.breakers.get(region)
                self.breakers[region] = min(known, at) if known else at


def assess_warnings(result: Result, log: WarningLog, started_at: float, window: Window,
                    scenario: str) -> None:  # fmt: skip
    """Put the warnings on the drill's timeline (seconds since the load began) and judge them."""
    result.warnings = sorted(({"signal": s, "t": round(at - started_at, 1)}
                              for s, at in log.warnings.items()), key=lambda w: w["t"])  # fmt: skip
    opened = [at - started_at for at in log.breakers.values()]
    result.breaker_open_s = round(min(opened), 1) if opened else None
    during = [w for w in result.warnings if w["t"] >= window.fault_start]
    first = during[0] if during else None
    result.first_warning_s = first["t"] if first else None
    if first is not None and result.breaker_open_s is not None:
        result.warning_lead_s = round(result.breaker_open_s - first["t"], 1)
    if scenario in EXPECT_WARNING:
        early = [w for w in result.warnings if w["t"] < window.fault_start]
        before_breaker = result.warning_lead_s is not None and result.warning_lead_s > 0
        ok = first is not None and not early and before_breaker
        opened_text = ("the breaker never opened" if result.breaker_open_s is None
                       else f"breaker first open at {result.breaker_open_s:.1f} s, lead "
                            f"{result.warning_lead_s} s")  # fmt: skip
        detail = (f"first warning {first['signal']} at {first['t']:.1f} s "
                  f"({first['t'] - window.fault_start:.1f} s into the fault); {opened_text}"
                  if first else "no warning during the fault")  # fmt: skip
        if early:
            detail += f"; {len(early)} warning(s) before the fault: {early}"
        result.checks.append(Check("early warning before the breaker", ok, detail, advisory=True))
    elif scenario in EXPECT_QUIET:
        detail = f"{len(result.warnings)} warnings: {result.warnings}"
        result.checks.append(
            Check("no warning on a normal day", not result.warnings, detail, advisory=True)
        )
