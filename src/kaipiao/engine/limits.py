"""An adaptive concurrency limit per platform endpoint (AIMD with slow start).

Congestion, not errors, moves it: a call reported as congested (a timeout, a 429) or a typical
latency (an EWMA) grown to `latency_growth` times its best recent level cuts the limit by
`backoff`, at most once per `cooldown_s` (one burst is one cut). Single slow calls in a heavy tail
and fast errors do not. Otherwise, while the limit is in use: slow start (+1 per call, about
doubling per round trip) until the first cut, so a slow platform (800 ms per call needs ~240 in
flight for 300/s) is reached in seconds; then additive increase (+1/limit per call). Bounded by
[minimum, maximum].

Waiters queue FIFO; a release wakes only as many as now fit (measured: waking every waiter on
each release with a Condition cost a quarter of a worker's CPU at 500 waiting calls).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

WARM_UP = 100


class AdaptiveLimit:
    def __init__(
        self,
        initial: int = 20,
        minimum: int = 4,
        maximum: int = 1000,
        latency_growth: float = 2.5,
        backoff: float = 0.75,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = float(initial)
        self.minimum = minimum
        self.maximum = maximum
        self.latency_growth = latency_growth
        self.ewma: float | None = None
        self.best: float | None = None
        self.samples = 0
        self.backoff = backoff
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.in_flight = 0
        self.slow_start = True
        self.peak = float(initial)
        self._last_cut = -cooldown_s
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def available(self) -> int:
        return max(0, int(self.limit) - self.in_flight)

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < int(self.limit):
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releaser counted us in
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # woken and cancelled at once: give the slot back
                self._wake()
            else:
                self._waiters.remove(waiter)
            raise

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def _latency_grew(self, seconds: float) -> bool:
        self.samples += 1
        self.ewma = seconds if self.ewma is None else self.ewma * 0.95 + seconds * 0.05
        if self.samples < WARM_UP:
            return False  # a few draws from a heavy-tailed latency say little (measured: a
            # baseline taken from the first calls read normal latency as 3x congestion)
        # The best level drifts up slowly, so a platform that truly got slower becomes the norm.
        self.best = self.ewma if self.best is None else min(self.ewma, self.best * 1.001)
        return self.ewma > self.best * self.latency_growth

    async def release(self, ok: bool, seconds: float, *, answered: bool = True) -> None:
        """Return a slot: `ok` False marks the call congested (timeout, throttled).

        Only `answered` calls (the platform did its work and replied) teach the latency
        baseline: a refused connection fails in a millisecond, and learning from it set the
        baseline so low after an outage that every normal answer looked congested and held the
        limit at its minimum (measured: a 60 s outage left the drain at 2.5 invoices/s)."""
        grew = self._latency_grew(seconds) if answered else False
        self.peak = max(self.limit, self.peak * 0.9999)  # a peak from long ago fades
        if ok and not grew:
            if self.in_flight >= int(self.limit) * 0.8:
                # Slow start at first, and again while far below the recent peak (TCP after a
                # timeout): after an outage cut it to the minimum, +1 per round trip would take
                # minutes to carry the backlog again.
                fast = self.slow_start or self.limit < self.peak / 2
                step = 1.0 if fast else 1 / self.limit
                self.limit = min(self.maximum, self.limit + step)
        else:
            now = self.clock()
            if now - self._last_cut >= self.cooldown_s:
                self.limit = max(self.minimum, self.limit * self.backoff)
                self._last_cut = now
                self.slow_start = False
        self.in_flight -= 1
        self._wake()
