"""Refractory period: once a detector's score reaches `level`, the next `rest` values score 0.

An operator wants one warning when a series departs from its usual shape, not one per value
while it stays departed; NAB scores the same way (only a window's first detection earns, every
further detection outside a window costs). CAD OSE's "rest period" is the same idea.
"""

from __future__ import annotations

from kaipiao.warn.detector import Detector


class Refractory:
    def __init__(self, inner: Detector, level: float, rest: int) -> None:
        self.inner = inner
        self.level = level
        self.rest = rest
        self._quiet = 0

    def update(self, timestamp: float, value: float) -> float:
        # The inner detector still sees every value, so it keeps learning while quiet.
        score = self.inner.update(timestamp, value)
        if self._quiet > 0:
            self._quiet -= 1
            return 0.0
        if score >= self.level:
            self._quiet = self.rest
        return score
