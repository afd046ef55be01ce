"""An adaptive concurrency limit per platform endpoint (AIMD with slow start).

Congestion moves it, measured as a share: each call reported as congested (a timeout, a 429) or
not feeds a moving average over about `window` calls, and the limit is cut by `backoff` when
that share reaches `congested_share`, at most once per `cooldown_s` (one burst is one cut).
Otherwise, while the limit is in use: slow start (+1 per call, about doubling per round trip)
until the first cut, so a slow platform (800 ms per call needs ~240 in flight for 300/s) is
reached in seconds; then additive increase (+1/limit per call). Bounded by [minimum, maximum].

Latency alone does not cut it. A platform that slows down by itself (the field's 800 ms → 15 s)
needs more calls in flight, not fewer, to keep the same rate (Little's law), and cutting on
latency left a slow-platform drill issuing a few invoices a second while hundreds waited
(measured). The platform's own signals bound us instead: its quota (429, and the per-seller
token bucket before it), timeouts past the per-call limit, and `max_in_flight`. A heavy tail's
rare timeouts (7% of calls over 10 s in the `degraded` profile) stay under the share.

Waiters queue FIFO; a release wakes only as many as now fit (measured: waking every waiter on
each release with a Condition cost a quarter of a worker's CPU at 500 waiting calls).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class AdaptiveLimit:
    def __init__(
        self,
        initial: int = 20,
        minimum: int = 4,
        maximum: int = 1000,
        backoff: float = 0.75,
        cooldown_s: float = 1.0,
        congested_share: float = 0.15,
        window: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = float(initial)
        self.minimum = minimum
        self.maximum = maximum
        self.backoff = backoff
        self.cooldown_s = cooldown_s
        self.congested_share = congested_share
        self.window = window
        self.congestion = 0.0  # moving share of congested calls
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

    async def release(self, ok: bool) -> None:
        """Return a slot: `ok` False marks the call congested (timeout, throttled)."""
        self.congestion += ((not ok) - self.congestion) / self.window
        self.peak = max(self.limit, self.peak * 0.9999)  # a peak from long ago fades
        if ok:
            if self.in_flight >= int(self.limit) * 0.8:
                # Slow start at first, and again while far below the recent peak (TCP after a
                # timeout): after an outage cut it to the minimum, +1 per round trip would take
                # minutes to carry the backlog again.
                fast = self.slow_start or self.limit < self.peak / 2
                step = 1.0 if fast else 1 / self.limit
                self.limit = min(self.maximum, self.limit + step)
        elif self.congestion >= self.congested_share:
            now = self.clock()
            if now - self._last_cut >= self.cooldown_s:
                self.limit = max(self.minimum, self.limit * self.backoff)
                self._last_cut = now
                self.slow_start = False
        self.in_flight -= 1
        self._wake()
