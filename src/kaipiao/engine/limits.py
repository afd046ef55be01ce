"""An adaptive concurrency limit per platform endpoint (AIMD).

Additive increase: each call that succeeds under `target_latency_s` while the limit is in use
raises the limit by 1/limit (about +1 per round trip of the whole window). Multiplicative
decrease: a failure, timeout or a call slower than the target cuts it by `backoff` (at most once
per `cooldown_s`, so one burst of failures is one cut). Bounded by [minimum, maximum].
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class AdaptiveLimit:
    def __init__(
        self,
        initial: int = 50,
        minimum: int = 4,
        maximum: int = 1000,
        target_latency_s: float = 3.0,
        backoff: float = 0.75,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = float(initial)
        self.minimum = minimum
        self.maximum = maximum
        self.target_latency_s = target_latency_s
        self.backoff = backoff
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.in_flight = 0
        self._last_cut = -cooldown_s
        self._freed = asyncio.Condition()

    @property
    def available(self) -> int:
        return max(0, int(self.limit) - self.in_flight)

    async def acquire(self) -> None:
        async with self._freed:
            await self._freed.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1

    async def release(self, ok: bool, seconds: float) -> None:
        if ok and seconds < self.target_latency_s:
            if self.in_flight >= int(self.limit) * 0.8:
                self.limit = min(self.maximum, self.limit + 1 / self.limit)
        else:
            now = self.clock()
            if now - self._last_cut >= self.cooldown_s:
                self.limit = max(self.minimum, self.limit * self.backoff)
                self._last_cut = now
        async with self._freed:
            self.in_flight -= 1
            self._freed.notify_all()
