"""Run one detector over a NAB-layout corpus and score it with all three profiles.

Each series gets a fresh detector and is fed value by value, as it would be live; the detector's
time is measured separately from loading and scoring, to give its cost per value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kaipiao.warn.corpus import Series
from kaipiao.warn.detector import Detector
from kaipiao.warn.scoring import PROFILES, Result, label, optimise

# NAB's published scoreboard, standard profile (normalised), on its full 58-series corpus; the
# shared copy leaves out the realKnownCause group, so these are a mark, not a like-for-like row.
SCOREBOARD: tuple[tuple[str, float], ...] = (
    ("Numenta HTM", 70.0),
    ("CAD OSE", 69.9),
    ("earthgecko Skyline", 58.2),
    ("KNN CAD", 58.0),
    ("Relative Entropy", 54.6),
    ("Random Cut Forest", 51.7),
    ("Seasonal Hybrid ESD", 47.1),
    ("Windowed Gaussian", 39.6),
    ("random", 11.0),
)


@dataclass(frozen=True)
class Evaluation:
    detector: str
    series: int
    values: int
    detector_seconds: float
    results: tuple[Result, ...]  # one per profile, in PROFILES order

    @property
    def microseconds_per_value(self) -> float:
        return 1e6 * self.detector_seconds / max(self.values, 1)


def run_detector(detector: Detector, series: Series) -> list[float]:
    """The detector's score for every row, fed in order."""
    update = detector.update
    return [update(t, v) for t, v in zip(series.timestamps, series.values, strict=True)]


def evaluate(corpus: Sequence[Series], make: Callable[[], Detector], name: str,
             on_series: Callable[[Series], None] | None = None) -> Evaluation:  # fmt: skip
    scores: list[list[float]] = []
    spent = 0.0
    for series in corpus:
        started = time.perf_counter()
        scores.append(run_detector(make(), series))
        spent += time.perf_counter() - started
        if on_series is not None:
            on_series(series)
    labelled = [label(s.group, len(s.values), s.windows) for s in corpus]
    results = tuple(optimise(labelled, scores, profile) for profile in PROFILES)
    values = sum(len(s.values) for s in corpus)
    return Evaluation(name, len(corpus), values, spent, results)
