"""Anomaly likelihood: turns a raw score that is often high in a noisy series into how unusual
the *recent* raw scores are for this series (the post-processing HTM's NAB entry describes).

The mean of the last `short` raw scores is compared with the mean and spread of the same short
means over the previous `long` values: the output is Φ(z), the standard normal's cumulative
probability. A series whose raw score is always 0.6 stays quiet; one whose raw score jumps from a
steady 0.1 to 0.6 is flagged. Nothing is reported until `learn` short means have been seen.
Running sums make a value cost O(1).
"""

from __future__ import annotations

import math
from collections import deque

from kaipiao.warn.detector import Detector

_MIN_SPREAD = 1e-4  # a raw score that never moved would otherwise make any change infinite


class Likelihood:
    def __init__(self, inner: Detector, short: int = 5, long: int = 2000, learn: int = 300,
                 ) -> None:  # fmt: skip
        self.inner = inner
        self.learn = learn
        self._recent: deque[float] = deque(maxlen=short)
        self._recent_sum = 0.0
        self._means: deque[float] = deque()
        self._long = long
        self._sum = 0.0
        self._squares = 0.0

    def update(self, timestamp: float, value: float) -> float:
        raw = self.inner.update(timestamp, value)
        if len(self._recent) == self._recent.maxlen:
            self._recent_sum -= self._recent[0]
        self._recent.append(raw)
        self._recent_sum += raw
        mean = self._recent_sum / len(self._recent)
        score = 0.0
        n = len(self._means)
        if n >= self.learn:
            centre = self._sum / n
            spread = max(math.sqrt(max(self._squares / n - centre * centre, 0.0)), _MIN_SPREAD)
            score = 0.5 * math.erfc(-(mean - centre) / spread / math.sqrt(2.0))
        self._means.append(mean)
        self._sum += mean
        self._squares += mean * mean
        if n + 1 > self._long:
            old = self._means.popleft()
            self._sum -= old
            self._squares -= old * old
        return score
