"""Fault knobs of the sandbox platform and the named profiles of the field report (DESIGN §5).

Every knob is independent; a profile is only a named set of knob values. Draws come from one
seeded `random.Random`, so a run with the same seed and the same call order behaves the same.

Profiles:
- `ideal`: no latency, no failures (tests, local development);
- `normal`: lognormal latency with mean 800 ms, 0.5% failures;
- `degraded`: Pareto tail (about 20% of calls over 5 s, mean near 5 s), 8.7% failures;
- `outage`: the platform is unreachable (listener closed) for `outage_for_s`;
- `ambiguous`: 20% of issues succeed and then lose their answer; dedup off;
- `throttled`: per-seller quota of 20 calls/s, 429 with Retry-After past it;
- `regional`: 150–220 ms for the home province, 780–920 ms across provinces.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

LatencyKind = Literal["none", "fixed", "lognormal", "pareto"]
OutageMode = Literal["refuse", "hang"]
AmbiguousMode = Literal["drop", "delay"]
FailureKind = Literal["503", "500", "reset"]


class FaultConfigError(ValueError):
    """A fault setting that cannot be applied; the text says which knob and why."""


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency of one call in milliseconds.

    fixed: `mean_ms`; lognormal: mean `mean_ms`, shape `sigma`; pareto: scale `min_ms`, shape
    `alpha` (P(X > x) = (min_ms / x)^alpha). Every draw is capped at `cap_ms`.
    """

    kind: LatencyKind = "none"
    mean_ms: float = 0.0
    sigma: float = 0.5
    min_ms: float = 0.0
    alpha: float = 1.5
    cap_ms: float = 60_000.0

    def draw(self, rng: random.Random) -> float:
        if self.kind == "none":
            return 0.0
        if self.kind == "fixed":
            value = self.mean_ms
        elif self.kind == "lognormal":
            mu = math.log(max(self.mean_ms, 1e-9)) - self.sigma**2 / 2
            value = rng.lognormvariate(mu, self.sigma)
        else:
            value = self.min_ms * rng.paretovariate(self.alpha)
        return min(value, self.cap_ms)


@dataclass(frozen=True, slots=True)
class Faults:
    """The complete fault configuration of a sandbox at one moment."""

    profile: str = "ideal"
    latency: Latency = field(default_factory=Latency)
    failure_rate: float = 0.0
    failure_kinds: tuple[FailureKind, ...] = ("503", "500", "reset")
    ambiguous_rate: float = 0.0
    ambiguous_mode: AmbiguousMode = "drop"
    ambiguous_delay_s: float = 120.0
    quota_per_s: float | None = None
    quota_burst: int = 10
    outage: OutageMode | None = None
    outage_for_s: float = 60.0
    down_regions: tuple[str, ...] = ()
    dedup: bool = True
    home_region: str | None = None
    same_region_ms: tuple[float, float] = (150.0, 220.0)
    cross_region_ms: tuple[float, float] = (780.0, 920.0)
    async_issue: bool = False
    async_delay_s: float = 2.0
    async_fail_rate: float = 0.0

    def call_latency_s(self, rng: random.Random, region: str | None) -> float:
        """Seconds one call waits before it is answered, regional latency taking precedence."""
        if self.home_region is not None:
            low, high = self.same_region_ms if region == self.home_region else self.cross_region_ms
            return rng.uniform(low, high) / 1000
        return self.latency.draw(rng) / 1000

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, Faults] = {
    "ideal": Faults(profile="ideal"),
    "normal": Faults(
        profile="normal",
        latency=Latency(kind="lognormal", mean_ms=800.0, sigma=0.5, cap_ms=10_000.0),
        failure_rate=0.005,
    ),
    "degraded": Faults(
        profile="degraded",
        # P(X > 5 s) = (1.71 / 5)^1.5 ≈ 0.20; mean = 1.5 × 1.71 / 0.5 ≈ 5.1 s before the cap.
        latency=Latency(kind="pareto", min_ms=1710.0, alpha=1.5, cap_ms=30_000.0),
        failure_rate=0.087,
    ),
    "outage": Faults(profile="outage", outage="refuse", outage_for_s=60.0),
    "ambiguous": Faults(profile="ambiguous", ambiguous_rate=0.2, dedup=False),
    "throttled": Faults(profile="throttled", quota_per_s=20.0, quota_burst=5),
    "regional": Faults(profile="regional", home_region="31"),
}


def _coerce(name: str, value: Any, current: Any) -> Any:
    if name == "latency":
        if not isinstance(value, dict):
            raise FaultConfigError("latency must be an object")
        return _apply(current, value)
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def _apply(base: Any, knobs: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(base)}
    updates: dict[str, Any] = {}
    for name, value in knobs.items():
        if name not in known:
            raise FaultConfigError(f"unknown fault knob {name!r}")
        updates[name] = _coerce(name, value, getattr(base, name))
    return replace(base, **updates)


def build_faults(spec: dict[str, Any], current: Faults | None = None) -> Faults:
    """Faults from a JSON object: an optional `profile` name, then individual knobs on top.

    Without `profile`, knobs apply on top of `current`. Raises FaultConfigError on unknown
    profiles, unknown knobs or values out of range.
    """
    spec = dict(spec)
    name = spec.pop("profile", None)
    if name is not None:
        if name not in PROFILES:
            raise FaultConfigError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        base = PROFILES[name]
    else:
        base = current or PROFILES["ideal"]
        if spec:
            spec.setdefault("profile", "custom")
    try:
        faults: Faults = _apply(base, spec)
    except TypeError as exc:
        raise FaultConfigError(str(exc)) from None
    _validate(faults)
    return faults


def _validate(f: Faults) -> None:
    for name in ("failure_rate", "ambiguous_rate", "async_fail_rate"):
        value = getattr(f, name)
        if not isinstance(value, int | float) or not 0 <= value <= 1:
            raise FaultConfigError(f"{name} must be a number from 0 to 1")
    if f.latency.kind not in ("none", "fixed", "lognormal", "pareto"):
        raise FaultConfigError("latency.kind must be none, fixed, lognormal or pareto")
    for name in ("mean_ms", "sigma", "min_ms", "alpha", "cap_ms"):
        value = getattr(f.latency, name)
        if not isinstance(value, int | float) or value < 0:
            raise FaultConfigError(f"latency.{name} must be a number ≥ 0")
    if f.latency.kind == "pareto" and f.latency.alpha <= 0:
        raise FaultConfigError("latency.alpha must be > 0")
    if f.outage not in (None, "refuse", "hang"):
        raise FaultConfigError("outage must be null, refuse or hang")
    if f.ambiguous_mode not in ("drop", "delay"):
        raise FaultConfigError("ambiguous_mode must be drop or delay")
    if not f.failure_kinds or any(k not in ("503", "500", "reset") for k in f.failure_kinds):
        raise FaultConfigError("failure_kinds must name 503, 500 or reset")
    if f.quota_per_s is not None and (
        not isinstance(f.quota_per_s, int | float) or f.quota_per_s <= 0
    ):
        raise FaultConfigError("quota_per_s must be null or > 0")
    if not isinstance(f.quota_burst, int) or f.quota_burst < 1:
        raise FaultConfigError("quota_burst must be an integer ≥ 1")
    for name in ("outage_for_s", "ambiguous_delay_s", "async_delay_s"):
        value = getattr(f, name)
        if not isinstance(value, int | float) or value < 0:
            raise FaultConfigError(f"{name} must be a number ≥ 0")
    if not isinstance(f.dedup, bool) or not isinstance(f.async_issue, bool):
        raise FaultConfigError("dedup and async_issue must be true or false")
