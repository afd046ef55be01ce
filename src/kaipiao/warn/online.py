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

Shares (failure, 429) fed with their window's call count `n` are judged as counts instead: the
window's events must be significantly more than the baseline rate explains (`significance.py`:
one-sided binomial test, P ≤ 1e-4, at least 5 events, ×2 the baseline, the baseline rate taken
as at least 1%). The Gaussian and the points gate cannot do that: at 0.5% calm failures and
~100 calls a window, +3 points happen by chance every few minutes.

Latency must stay anomalous and material for `persist` consecutive values (3): one slow burst of
calls moves a p95 for a second or two, a slow platform keeps it up.

The baseline is a plain mean while few values have been seen, then an exponential mean over
`baseline_s`; for a counted share it is events over calls. A suspect value (one that passes, or
for a share P ≤ `SUSPECT_P`) teaches it at a tenth of the weight, so a fault is not absorbed into
its own baseline within seconds, and a lasting new level is still learnt, ten times slower.

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
from kaipiao.warn.significance import CountTest


@dataclass(frozen=True, slots=True)
class Gate:
    """A material departure: value ≥ `ratio` × baseline and value − baseline ≥ `delta`."""

    ratio: float
    delta: float
    persist: int = 1  # consecutive values that must pass before a warning is raised

    def passes(self, value: float, baseline: float) -> bool:
        return value >= self.ratio * baseline and value - baseline >= self.delta


GATES: dict[str, Gate] = {
    "latency_p95": Gate(2.0, 0.5, persist=3),  # seconds
    "failure_share": Gate(2.0, 0.03),  # share of calls over 10 s
    "throttled_share": Gate(2.0, 0.03),
    "backlog": Gate(3.0, 50.0),  # invoices waiting
    "intake": Gate(4.0, 5.0),  # accepted per second over 10 s
}
SIGNAL_KINDS = tuple(GATES)
SHARE_KINDS = frozenset({"failure_share", "throttled_share"})
COUNT_TEST = CountTest()
SUSPECT_P = 1e-3  # a share this unlikely under its baseline is suspect: it barely teaches it


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
        self.streak = 0  # consecutive values that passed
        self.events = 0.0  # for a share fed with its count: mean events and calls a window
        self.calls = 0.0


class WarningBoard:
    """The signals of one process and their raised warnings. Not thread-safe: one event loop."""

    def __init__(self, config: BoardConfig | None = None) -> None:
        self.config = config or BoardConfig()
        self._series: dict[str, _Series] = {}
        self._raised: dict[str, Warning] = {}

    def observe(self, signal: str, t: float, value: float, n: int | None = None) -> Warning | None:
        """Feed one value of `signal` seen at `t` (for a share, `n` is its window's call count);
        returns the warning if this value raised a new one (a raised warning that is confirmed
        again only has its `last` moved)."""
        kind = kind_of(signal)
        series = self._series.get(signal)
        if series is None:
            series = self._series[signal] = _Series(self.config, GATES[kind])
        score = series.detector.update(t, value)
        baseline = series.baseline
        series.seen += 1
        counted = kind in SHARE_KINDS and n is not None
        if counted and n is not None:
            p_value = COUNT_TEST.p_value(value, n, baseline)
            passed = COUNT_TEST.passes(value, n, baseline)
            suspect = p_value < SUSPECT_P
            score = 1.0 - p_value
        else:
            passed = score >= self.config.level and series.gate.passes(value, baseline)
            suspect = passed
        # The baseline is a plain mean while learning, then an exponential mean over baseline_s;
        # a share with its count is weighted by it (events over calls), so the first seconds'
        # windows of a few calls, where one failure is 10%, count for what they hold. A suspect
        # value teaches it at a tenth of the weight: a fault must not become its own baseline
        # within seconds, while a lasting new level is still learnt, ten times slower.
        weight = max(1.0 / series.seen, 1.0 / self.config.baseline_s)
        if suspect:
            weight /= 10
        if counted and n is not None:
            series.events += weight * (value * n - series.events)
            series.calls += weight * (n - series.calls)
            series.baseline = series.events / series.calls if series.calls > 0 else 0.0
        else:
            series.baseline += weight * (value - series.baseline)
        if series.seen <= self.config.learn:
            return None
        series.streak = series.streak + 1 if passed else 0
        if series.streak < series.gate.persist:
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
