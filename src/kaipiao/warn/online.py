"""Early warnings on kaipiao's own per-second series: which signals, when one warns, and for how
long it stays raised.

A signal is named `<kind>` or `<kind>:<key>` (`latency_p95:44`, `failure_share:31`,
`throttled_share:44`, `intake:31`, `backlog`). Each signal has its own detector, fed one value a
second, and a warning needs two things at once:

- the detector finds the value anomalous: a windowed Gaussian (`gaussian.py`) over the last 600
  values (10 minutes), score ≥ `level` (0.99: |z| ≥ 2.6). The Gaussian, not the NAB-tuned `context`
  detector, because it is usable after `learn` values (tens of seconds) where the context
  detector needs hundreds of values to know its contexts, and a worker that restarts must not
  be blind for its first ten minutes;
- the departure is material, in the signal's own unit: the kind's `Gate` against a slow
  baseline (an exponential mean over `baseline_s`), and only upwards (a platform getting faster
  is no warning). Without the gate a quiet series with a tiny spread warns on noise.

Intake is judged as a departure from its own recent level (×4 its baseline within a minute), not
from a fixed line, so the daily shape of intake — a ramp of a few × over hours — never pages,
while a surge of 10× in seconds does.

The rest period, in values at one value a second: once raised, a warning stays raised (one
notification) until its signal has been quiet for `hold_s` values; NAB's 100 values (8 h of
5-minute data) would be under two minutes here, so the board keeps its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from kaipiao.warn.gaussian import WindowedGaussian


@dataclass(frozen=True, slots=True)
class Gate:
    """A material departure: value ≥ `ratio` × baseline and value − baseline ≥ `delta`."""

    ratio: float
    delta: float

    def passes(self, value: float, baseline: float) -> bool:
        return value >= self.ratio * baseline and value - baseline >= self.delta


GATES: dict[str, Gate] = {
    "latency_p95": Gate(2.0, 0.5),  # seconds
    "failure_share": Gate(2.0, 0.03),  # share of calls over 10 s
    "throttled_share": Gate(2.0, 0.03),
    "backlog": Gate(3.0, 50.0),  # invoices waiting
    "intake": Gate(4.0, 5.0),  # accepted per second over 10 s
}
SIGNAL_KINDS = tuple(GATES)


def kind_of(signal: str) -> str:
    kind = signal.split(":", 1)[0]
    if kind not in GATES:
        raise ValueError(f"unknown signal kind {kind!r}; known: {', '.join(SIGNAL_KINDS)}")
    return kind


@dataclass(frozen=True, slots=True)
class BoardConfig:
    learn: int = 60  # values before a signal may warn (and before its baseline is a mean)
    window: int = 600
    level: float = 0.99
    baseline_s: float = 300.0
    hold_s: float = 120.0


@dataclass(frozen=True, slots=True)
class Warning:
    """A raised warning: its signal, when it was raised (`since`) and last confirmed (`last`),
    POSIX seconds, with the value and score that raised it."""

    signal: str
    since: float
    last: float
    value: float
    baseline: float
    score: float

    def to_json(self) -> dict[str, object]:
        return {"signal": self.signal, "since": self.since, "last": self.last,
                "value": round(self.value, 4), "baseline": round(self.baseline, 4),
                "score": round(self.score, 4)}  # fmt: skip


class _Series:
    def __init__(self, config: BoardConfig, gate: Gate) -> None:
        self.detector = WindowedGaussian(window=config.window, warmup=config.learn)
        self.gate = gate
        self.seen = 0
        self.baseline = 0.0


class WarningBoard:
    """The signals of one process and their raised warnings. Not thread-safe: one event loop."""

    def __init__(self, config: BoardConfig | None = None) -> None:
        self.config = config or BoardConfig()
        self._series: dict[str, _Series] = {}
        self._raised: dict[str, Warning] = {}

    def observe(self, signal: str, t: float, value: float) -> Warning | None:
        """Feed one value of `signal` seen at `t`; returns the warning if this value raised a new
        one (a raised warning that is confirmed again only has its `last` moved)."""
        series = self._series.get(signal)
        if series is None:
            series = self._series[signal] = _Series(self.config, GATES[kind_of(signal)])
        score = series.detector.update(t, value)
        baseline = series.baseline
        series.seen += 1
        # The baseline is a plain mean while learning, then an exponential mean over baseline_s.
        weight = max(1.0 / series.seen, 1.0 / self.config.baseline_s)
        series.baseline += weight * (value - series.baseline)
        if series.seen <= self.config.learn:
            return None
        if score < self.config.level or not series.gate.passes(value, baseline):
            return None
        current = self._raised.get(signal)
        if current is not None:
            self._raised[signal] = replace(current, last=t)
            return None
        warning = Warning(signal, t, t, value, baseline, score)
        self._raised[signal] = warning
        return warning

    def expire(self, now: float) -> list[Warning]:
        """Lower the warnings not confirmed for `hold_s`; returns them."""
        ended = [w for w in self._raised.values() if now - w.last >= self.config.hold_s]
        for w in ended:
            del self._raised[w.signal]
        return ended

    def active(self) -> list[Warning]:
        return sorted(self._raised.values(), key=lambda w: (w.since, w.signal))
