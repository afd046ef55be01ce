"""Per-seller quota at dispatch: tokens come from the shared bucket in the database (so the rate
holds across worker processes), a few at a time, and are spent locally. Unspent tokens lapse after
`hold_s`, so one worker cannot hoard a burst that the others then add to (measured: a 1 s hold
let three workers bunch their calls past the platform's own quota)."""

from __future__ import annotations

import asyncio
import functools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from kaipiao.domain.sellers import Seller
from kaipiao.store.database import Database
from kaipiao.store.quota import take_tokens


@dataclass
class _Local:
    tokens: int = 0
    expires: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class QuotaGate:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        *,
        window_s: float = 0.2,
        hold_s: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.window_s = window_s
        self.hold_s = hold_s
        self.rng = rng or random.Random()
        self._local: dict[str, _Local] = {}

    @staticmethod
    def burst(rate: float) -> float:
        return max(1.0, min(rate * 0.1, 10.0))

    async def acquire(self, seller: Seller) -> None:
        """Wait until this seller may make one more platform call."""
        rate = seller.quota_per_s
        if rate is None:
            return
        local = self._local.setdefault(seller.id, _Local())
        while True:
            if local.tokens > 0 and time.monotonic() < local.expires:
                local.tokens -= 1
                return
            async with local.lock:
                if local.tokens > 0 and time.monotonic() < local.expires:
                    continue
                want = max(1, math.ceil(rate * self.window_s))
                granted = await self.db.write(
                    functools.partial(
                        take_tokens, seller_id=seller.id, rate=rate, burst=self.burst(rate),
                        want=want, now=self.clock(),
                    )
                )  # fmt: skip
                if granted:
                    local.tokens = granted
                    local.expires = time.monotonic() + self.hold_s
                    continue
            await asyncio.sleep(min(0.5, 1 / rate) * self.rng.uniform(0.5, 1.5))
