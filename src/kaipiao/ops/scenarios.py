"""The drills: each incident of the field report (DESIGN §5) as a scenario with a fault window.

A drill runs for `duration` seconds of open-loop load: calm for the first 30%, the fault for the
next 30%, then calm again while the system recovers; after the load stops it waits for the backlog
to drain. The sandbox starts with the scenario's `base` knobs; `fault` knobs are applied (PUT
/_sandbox/faults) when the fault starts and the base restored when it ends.

Some incidents deepen, as the field report's did: a scenario's `escalation` knobs are laid over the
fault at `ESCALATE_AT` of its window: the slow or failing platform ends up shedding load. The
first part is what the early warning must notice; the deeper part is what opens the circuit
breaker, so a drill can report how long the warning came before the breaker
(kaipiao/ops/drill_warning.py).

Calm means the field report's normal platform: ~200 ms (lognormal, capped at 3 s), 0.5% failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FAULT_START = 0.3
FAULT_END = 0.6
ESCALATE_AT = 2 / 3  # of the fault window

CALM: dict[str, Any] = {
    "latency": {"kind": "lognormal", "mean_ms": 200.0, "sigma": 0.5, "cap_ms": 3000.0},
    "failure_rate": 0.005,
}
SLOW_BASE: dict[str, Any] = {
    "latency": {"kind": "lognormal", "mean_ms": 800.0, "sigma": 0.5, "cap_ms": 10_000.0},
    "failure_rate": 0.005,
}
# P(X > 5 s) = (1.71 / 5)^1.5 ≈ 0.20: the field report's "20% of calls over 5 s".
HEAVY_TAIL: dict[str, Any] = {
    "latency": {"kind": "pareto", "min_ms": 1710.0, "alpha": 1.5, "cap_ms": 20_000.0}
}
# The overloaded platform sheds load: 70% of calls fail at once (503, 500, resets). The breaker
# opens on its failure share (50% of its window); the early warning must have fired before, on
# the fault's first part.
SHEDDING: dict[str, Any] = {**CALM, "failure_rate": 0.7}

Crash = Literal["none", "worker", "store"]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    base: dict[str, Any] = field(default_factory=lambda: dict(CALM))
    fault: dict[str, Any] | None = None
    escalation: dict[str, Any] | None = None  # laid over the fault at ESCALATE_AT of its window
    rate_factor: float = 1.0  # arrivals during the fault window, × the base rate
    # The platform's quota for all sellers together, × the base rate (None: unlimited): the
    # sandbox answers 429 past it, and kaipiao's sellers are registered with their share.
    quota_x: float | None = None
    crash: Crash = "none"
    workers: int = 1
    dedup: bool = True  # False: the platform does not deduplicate serials; a resend is a duplicate
    longest_call_s: float = 3.0  # the slowest platform answer in this scenario (sets settle time)
    callers_may_fail: bool = False  # the fault takes the API itself down for a moment
    self_ending: bool = False  # the sandbox ends the fault by itself (an outage reopens on a timer)
    checked_region: str | None = None  # a region that must not slow down during the fault
    daily: bool = False  # arrivals follow a working day's shape, the whole day over the run

    def fault_knobs(self, window_s: float) -> dict[str, Any] | None:
        if self.name == "outage":
            return {"outage": "refuse", "outage_for_s": window_s}
        return self.fault


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("surge", "10× the base rate for the fault window, platform quota 5× (year end)",
                 rate_factor=10.0, quota_x=5.0),
        Scenario("slow-platform", "latency 800 ms → heavy tail, 20% of calls over 5 s; then "
                 "70% fail", base=dict(SLOW_BASE), fault=HEAVY_TAIL, escalation=SHEDDING,
                 longest_call_s=20.0),
        Scenario("failure-spike", "platform failures 0.5% → 8.7% (5xx, resets); then 70%",
                 fault={"failure_rate": 0.087}, escalation=SHEDDING),
        Scenario("outage", "the platform refuses every connection, then comes back",
                 self_ending=True),
        Scenario("ambiguous", "20% of issues succeed and lose their answer; no platform dedup",
                 fault={"ambiguous_rate": 0.2}, dedup=False),
        Scenario("worker-crash", "kill -9 a worker every 3 s (2 workers); no platform dedup",
                 crash="worker", workers=2, dedup=False),
        Scenario("db-restart", "the database restarts (SQLite: kill -9 of every kaipiao process)",
                 crash="store", callers_may_fail=True),
        Scenario("clean", "no fault; intake follows a working day's shape, replayed over the run",
                 daily=True),
        Scenario("region-outage", "province 44 hangs; province 31 must not slow down",
                 fault={"down_regions": ["44"]}, checked_region="31"),
    )
}  # fmt: skip
