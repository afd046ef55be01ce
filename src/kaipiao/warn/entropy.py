"""Relative entropy detector, after Wang et al., "Statistical techniques for online anomaly
detection in data centers" (IM 2011), the "Relative Entropy" entry of NAB's scoreboard.

The last `window` values are summarised as a histogram over `bins` equal bins of the range seen so
far. The detector keeps hypotheses: histograms of windows seen before, each with how often it has
explained a window. The current histogram Q is explained by a hypothesis P when the test statistic
2·window·KL(Q‖P) stays under the chi-square quantile `significance` with `bins` - 1 degrees of
freedom. A window that no hypothesis explains becomes a new hypothesis and is anomalous; one
explained only by a hypothesis that has explained fewer than `rare` windows is anomalous too.

Score: 1.0 for an unexplained window, 0.75 for one explained by a rare hypothesis, otherwise the
chi-square probability of the statistic against the closest frequent hypothesis scaled to
[0, 0.5] (so the threshold can still separate near-misses).
"""

from __future__ import annotations

import math
from collections import deque

_FLOOR = 1e-3  # empty bins of a hypothesis would make KL infinite


def chi_square_cdf(x: float, degrees: int) -> float:
    """Closed form for an even number of degrees of freedom."""
    if degrees % 2:
        raise ValueError("even degrees of freedom only")
    half = x / 2.0
    term, total = 1.0, 1.0
    for i in range(1, degrees // 2):
        term *= half / i
        total += term
    return max(0.0, 1.0 - math.exp(-half) * total)


def chi_square_quantile(p: float, degrees: int) -> float:
    low, high = 0.0, 1000.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if chi_square_cdf(mid, degrees) < p:
            low = mid
        else:
            high = mid
    return high


class RelativeEntropy:
    def __init__(self, window: int = 52, bins: int = 5, significance: float = 0.99,
                 rare: int = 4, max_hypotheses: int = 64) -> None:  # fmt: skip
        if bins % 2 == 0:
            raise ValueError("bins must be odd (the chi-square test then has even degrees)")
        self.window = window
        self.bins = bins
        self.rare = rare
        self.max_hypotheses = max_hypotheses
        self._limit = chi_square_quantile(significance, bins - 1)
        self._values: deque[float] = deque(maxlen=window)
        self._low = math.inf
        self._high = -math.inf
        self._hypotheses: list[list[float]] = []
        self._uses: list[int] = []

    def update(self, timestamp: float, value: float) -> float:
        self._values.append(value)
        self._low = min(self._low, value)
        self._high = max(self._high, value)
        if len(self._values) < self.window:
            return 0.0
        # The histogram is rebuilt each time: the bins move whenever the range widens, and at
        # `window` ~ 50 values rebuilding costs about what bookkeeping would.
        current = self._histogram()
        best, best_uses = math.inf, 0
        for k, hypothesis in enumerate(self._hypotheses):
            statistic = 2.0 * self.window * _divergence(current, hypothesis)
            if statistic < best:
                best, best_uses = statistic, k
        if best >= self._limit:
            self._remember(current)
            return 1.0
        self._uses[best_uses] += 1
        if self._uses[best_uses] <= self.rare:
            return 0.75
        return 0.5 * chi_square_cdf(best, self.bins - 1)

    def _histogram(self) -> list[float]:
        counts = [0.0] * self.bins
        span = self._high - self._low
        for value in self._values:
            b = (
                0
                if span <= 0.0
                else min(int((value - self._low) / span * self.bins), self.bins - 1)
            )
            counts[b] += 1.0
        return [c / self.window for c in counts]

    def _remember(self, histogram: list[float]) -> None:
        if len(self._hypotheses) >= self.max_hypotheses:
            least = min(range(len(self._uses)), key=self._uses.__getitem__)
            del self._hypotheses[least]
            del self._uses[least]
        self._hypotheses.append([max(p, _FLOOR) for p in histogram])
        self._uses.append(1)


def _divergence(q: list[float], p: list[float]) -> float:
    return sum(qi * math.log(qi / pi) for qi, pi in zip(q, p, strict=True) if qi > 0.0)
