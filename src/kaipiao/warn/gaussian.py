"""Windowed Gaussian: how many standard deviations a value lies from the mean of the values just
before it (NAB's simplest baseline, 39.6 on its scoreboard).

The window's sum and sum of squares are kept incrementally, so a value costs O(1); they are
recomputed from the buffer every `window` values, so float error cannot pile up over a long run.
"""

from __future__ import annotations

import math
from collections import deque


class WindowedGaussian:
    """score = erf(|z| / √2) = P(|N(0,1)| < |z|), z measured against the previous `window` values;
    0 until `warmup` values have been seen."""

    def __init__(self, window: int = 400, warmup: int = 30) -> None:
        self.window = window
        self.warmup = warmup
        self._values: deque[float] = deque()
        self._sum = 0.0
        self._squares = 0.0
        self._since_refresh = 0

    def update(self, timestamp: float, value: float) -> float:
        n = len(self._values)
        score = 0.0
        if n >= self.warmup:
            mean = self._sum / n
            variance = max(self._squares / n - mean * mean, 0.0)
            spread = math.sqrt(variance)
            if spread > 1e-12:
                score = math.erf(abs(value - mean) / spread / math.sqrt(2.0))
            elif abs(value - mean) > 1e-12:
                score = 1.0
        self._push(value)
        return score

    def _push(self, value: float) -> None:
        self._values.append(value)
        self._sum += value
        self._squares += value * value
        if len(self._values) > self.window:
            old = self._values.popleft()
            self._sum -= old
            self._squares -= old * old
        self._since_refresh += 1
        if self._since_refresh >= self.window:
            self._since_refresh = 0
            self._sum = math.fsum(self._values)
            self._squares = math.fsum(v * v for v in self._values)
