"""A circuit breaker per platform endpoint or region, with resilience4j's semantics.

- CLOSED: calls pass; the last `window` calls are recorded. Once at least `minimum_calls` are in
  the window and the failure rate or the slow-call rate reaches its threshold, it OPENs.
- OPEN: calls are refused for `open_for_s`; then HALF_OPEN.
- HALF_OPEN: `probes` calls are let through. If their failure or slow rate is below the
  thresholds, CLOSED (with an empty window); otherwise OPEN again.

A slow call is one that took at least `slow_call_s`, whatever its result.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window: int = 50
    minimum_calls: int = 10
    failure_rate: float = 0.5
    slow_call_rate: float = 0.8
    slow_call_s: float = 5.0
    open_for_s: float = 10.0
    probes: int = 3


class CircuitBreaker:
    def __init__(
        self, config: BreakerConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or BreakerConfig()
        self.clock = clock
        self.state = BreakerState.CLOSED
        self._calls: deque[tuple[bool, bool]] = deque(maxlen=self.config.window)
        self._opened_at = 0.0
        self._half_open_at = 0.0
        self._probes_out = 0
        self._probe_results: list[tuple[bool, bool]] = []
        self.opened_total = 0

    def _rates(
        self, calls: list[tuple[bool, bool]] | deque[tuple[bool, bool]]
    ) -> tuple[float, float]:
        n = len(calls)
        failures = sum(1 for failed, _ in calls if failed)
        slow = sum(1 for _, was_slow in calls if was_slow)
        return failures / n, slow / n

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = self.clock()
        self.opened_total += 1

    def accepting(self) -> bool:
        """Would `allow` let a call through now? (Reserves nothing: for deciding what to claim.)"""
        if self.state is BreakerState.OPEN:
            return self.clock() - self._opened_at >= self.config.open_for_s
        if self.state is BreakerState.HALF_OPEN:
            return self._probes_out < self.config.probes or self._probes_stale()
        return True

    def _probes_stale(self) -> bool:
        # A probe that never reports back (its task died) must not hold the breaker half-open.
        return self.clock() - self._half_open_at > 3 * self.config.open_for_s

    def allow(self) -> bool:
        """May a call go out now? (In HALF_OPEN this reserves one probe.)"""
        if self.state is BreakerState.HALF_OPEN and self._probes_stale():
            self._open()
        if self.state is BreakerState.OPEN:
            if self.clock() - self._opened_at < self.config.open_for_s:
                return False
            self.state = BreakerState.HALF_OPEN
            self._half_open_at = self.clock()
            self._probes_out = 0
            self._probe_results = []
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_out >= self.config.probes:
                return False
            self._probes_out += 1
        return True

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets probes through (0 if it is not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.config.open_for_s - (self.clock() - self._opened_at))

    def record(self, failed: bool, seconds: float) -> None:
        """Record the result of a call that `allow` let through. Every such call must report,
        or a half-open breaker waits for its probes (measured: a path that returned early left
        a breaker half-open for good after an outage)."""
        result = (failed, seconds >= self.config.slow_call_s)
        c = self.config
        if self.state is BreakerState.HALF_OPEN:
            self._probe_results.append(result)
            if len(self._probe_results) >= c.probes:
                failure_rate, slow_rate = self._rates(self._probe_results)
                if failure_rate < c.failure_rate and slow_rate < c.slow_call_rate:
                    self.state = BreakerState.CLOSED
                    self._calls.clear()
                else:
                    self._open()
            return
        if self.state is BreakerState.OPEN:
            return  # a call that started before the breaker opened
        self._calls.append(result)
        if len(self._calls) >= c.minimum_calls:
            failure_rate, slow_rate = self._rates(self._calls)
            if failure_rate >= c.failure_rate or slow_rate >= c.slow_call_rate:
                self._open()
