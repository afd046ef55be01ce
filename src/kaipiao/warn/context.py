"""Context detector, in the family of CAD OSE (Smirnov's Contextual Anomaly Detector, open
source edition) and KNN-CAD: a value is anomalous when the recent past has never been followed by
anything like it.

Written from the published descriptions, not from their code. Each value becomes a symbol: its
bin among `bins` equal bins over the range of values seen so far (only the past: NAB hands its
detectors the whole file's minimum and maximum, kaipiao's live series have no such thing). The
symbol is spelt as "facts", one per binary digit of the bin number, so that neighbouring bins share
most facts, as in CAD. The last k symbols (k = 1 … `order`) form left contexts; each context
remembers which facts have followed it. A value's raw score is the share of its facts that the
deepest context seen before did not predict. A value outside the range seen so far is fully
unpredicted. The raw score is averaged over `smooth` values so one odd value in a noisy
series counts less than a sustained change.
"""

from __future__ import annotations

from collections import deque


class ContextDetector:
    def __init__(self, bins: int = 7, order: int = 2, smooth: int = 1, warmup: int = 60,
                 ) -> None:  # fmt: skip
        self.bins = bins
        self.order = order
        self.warmup = warmup
        self._bits = max(1, (bins - 1).bit_length())
        self._low = float("inf")
        self._high = float("-inf")
        self._recent: deque[int] = deque(maxlen=order)
        # context (a tuple of the last k symbols) → facts seen after it, one set per digit
        self._followers: dict[tuple[int, ...], set[tuple[int, int]]] = {}
        self._raw: deque[float] = deque(maxlen=smooth)
        self._seen = 0

    def update(self, timestamp: float, value: float) -> float:
        outside = value < self._low or value > self._high
        self._low = min(self._low, value)
        self._high = max(self._high, value)
        symbol = self._symbol(value)
        facts = self._facts(symbol)
        raw = 1.0 if outside else self._unpredicted(facts)
        self._learn(facts)
        self._recent.append(symbol)
        self._seen += 1
        self._raw.append(raw)
        if self._seen <= self.warmup:
            return 0.0
        return sum(self._raw) / len(self._raw)

    def _symbol(self, value: float) -> int:
        span = self._high - self._low
        if span <= 0.0:
            return 0
        return min(int((value - self._low) / span * self.bins), self.bins - 1)

    def _facts(self, symbol: int) -> list[tuple[int, int]]:
        return [(digit, (symbol >> digit) & 1) for digit in range(self._bits)]

    def _unpredicted(self, facts: list[tuple[int, int]]) -> float:
        recent = tuple(self._recent)
        for k in range(len(recent), 0, -1):
            predicted = self._followers.get(recent[-k:])
            if predicted is not None:
                return sum(fact not in predicted for fact in facts) / len(facts)
        return 1.0

    def _learn(self, facts: list[tuple[int, int]]) -> None:
        recent = tuple(self._recent)
        for k in range(1, len(recent) + 1):
            self._followers.setdefault(recent[-k:], set()).update(facts)
