"""Per-second series from raw events: the values a `WarningBoard` is fed once a second.

`CallSeries` keeps the platform calls of the last few seconds per province and gives, for each,
the latency p95 over the last `latency_s` seconds — or over the last `latency_calls` calls when
the span holds fewer, reaching back at most `latency_max_s` (a p95 of 12 calls is their maximum,
and one slow call moves it) — and the failure and 429 shares over the last `share_s` seconds (a
share over one second of 20 calls moves in steps of 5%: too coarse to judge), with the number of
calls each share counts (`counts`, for the board's binomial test). A province with fewer than
`min_calls` calls in the span gives no value that second.
`RateSeries` counts events per key (intake per seller group) and gives the rate over `span_s`.
"""

from __future__ import annotations

from collections import deque

# Outcomes that show a platform answering normally; anything else (unavailable, ambiguous,
# an exception's name) is a failure, and throttled is counted on its own.
HEALTHY = frozenset({"issued", "duplicate", "pending", "rejected", "notfound"})
THROTTLED = "throttled"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class CallSeries:
    def __init__(self, latency_s: float = 5.0, share_s: float = 10.0, min_calls: int = 5,
                 latency_calls: int = 100, latency_max_s: float = 30.0) -> None:  # fmt: skip
        self.latency_s = latency_s
        self.share_s = share_s
        self.min_calls = min_calls
        self.latency_calls = latency_calls
        self.latency_max_s = max(latency_max_s, latency_s)
        self._calls: dict[str, deque[tuple[float, float, str]]] = {}
        self.counts: dict[str, int] = {}  # signal → calls its last value counted

    def record(self, t: float, region: str, outcome: str, seconds: float) -> None:
        self._calls.setdefault(region, deque()).append((t, seconds, outcome))

    def values(self, now: float) -> dict[str, float]:
        """The signals' values at `now`: `latency_p95:<region>`, `failure_share:<region>`,
        `throttled_share:<region>`; older calls are forgotten."""
        out: dict[str, float] = {}
        self.counts = {}
        horizon = now - max(self.latency_max_s, self.share_s)
        for region, calls in self._calls.items():
            while calls and calls[0][0] < horizon:
                calls.popleft()
            recent = [s for t, s, _ in calls if t >= now - self.latency_s]
            if len(recent) < self.latency_calls:
                older = [s for t, s, _ in calls if t >= now - self.latency_max_s]
                recent = older[-self.latency_calls :]
            if len(recent) >= self.min_calls:
                out[f"latency_p95:{region}"] = p95(recent)
            shared = [o for t, _, o in calls if t >= now - self.share_s]
            if len(shared) >= self.min_calls:
                failed = sum(o not in HEALTHY and o != THROTTLED for o in shared)
                out[f"failure_share:{region}"] = failed / len(shared)
                out[f"throttled_share:{region}"] = shared.count(THROTTLED) / len(shared)
                self.counts[f"failure_share:{region}"] = len(shared)
                self.counts[f"throttled_share:{region}"] = len(shared)
        return out


class RateSeries:
    def __init__(self, kind: str, span_s: float = 10.0) -> None:
        self.kind = kind
        self.span_s = span_s
        self._events: dict[str, deque[float]] = {}
        self._started: float | None = None

    def record(self, t: float, key: str) -> None:
        if self._started is None:
            self._started = t
        self._events.setdefault(key, deque()).append(t)

    def start(self, t: float) -> None:
        """Begin counting at `t` (a key with no events then has rate 0, not no value)."""
        if self._started is None:
            self._started = t

    def values(self, now: float) -> dict[str, float]:
        if self._started is None or now - self._started < self.span_s:
            return {}  # a rate over less than the span would understate
        out: dict[str, float] = {}
        for key, events in self._events.items():
            while events and events[0] < now - self.span_s:
                events.popleft()
            out[f"{self.kind}:{key}"] = len(events) / self.span_s
        return out
