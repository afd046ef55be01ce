"""The NAB score, written from the benchmark's published rules (Lavin & Ahmad 2015, and the
scoring description in NAB's README and wiki).

- Each labelled window is an inclusive row range. The first 15% of a series (at most 750 rows) is
  the probationary period: detections there are ignored.
- A detection inside a window is worth `tp · σ(y) / σ(-1)`, y = -(end - i + 1) / width, with the
  scaled sigmoid σ(y) = 2 / (1 + e^(5y)) - 1: the window's first row is worth exactly `tp`, later
  rows less. Only the best (earliest) detection of a window counts; an undetected window costs `fn`.
- A detection outside every window costs `fp · σ(y)` (σ < 0 there), y = (i - end) / (width - 1)
  measured from the end of the previous window, and the full `fp` when y > 3 or when no window
  came before: a late detection just after a window costs little, a far one the full amount.
- One threshold for the whole corpus, the one maximising the profile's total; the total is
  normalised so that detecting nothing scores 0 and detecting every window at its first row 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


# NAB's config/profiles.json (its `tn` weight is 1 everywhere and takes no part in the score).
PROFILES: tuple[Profile, ...] = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


def scaled_sigmoid(y: float) -> float:
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


_MAX_TP = scaled_sigmoid(-1.0)


def probation_rows(length: int, share: float = 0.15) -> int:
    return min(math.floor(share * length), math.floor(share * 5000))


@dataclass(frozen=True)
class Labelled:
    """One series prepared for scoring: per scored row, its window (-1: none) and the sigmoid
    weight σ(y) it would earn (inside a window, relative to the window's first row) or cost."""

    group: str
    windows: int
    rows: list[int]
    window_of: list[int]
    weight: list[float]


def label(group: str, length: int, windows: Sequence[tuple[int, int]]) -> Labelled:
    probation = probation_rows(length)
    window_of = [-1] * length
    weight = [-1.0] * length
    previous: tuple[int, int] | None = None
    spans = sorted(windows)
    next_window = 0
    for i in range(length):
        while next_window < len(spans) and spans[next_window][1] < i:
            previous = spans[next_window]
            next_window += 1
        current = spans[next_window] if next_window < len(spans) else None
        if current is not None and current[0] <= i <= current[1]:
            width = current[1] - current[0] + 1
            window_of[i] = next_window
            weight[i] = scaled_sigmoid(-(current[1] - i + 1) / width) / _MAX_TP
        elif previous is not None:
            width = previous[1] - previous[0] + 1
            weight[i] = scaled_sigmoid((i - previous[1]) / max(width - 1, 1))
    rows = list(range(probation, length))
    return Labelled(group, len(spans), rows, [window_of[i] for i in rows],
                    [weight[i] for i in rows])  # fmt: skip


@dataclass(frozen=True)
class Result:
    """A profile's outcome at its best corpus threshold; `by_group` holds normalised scores
    (None for a group without windows) and false-positive counts."""

    profile: Profile
    threshold: float
    raw: float
    score: float
    detected: int
    missed: int
    false_positives: int
    by_group: dict[str, tuple[float | None, int]]


def normalise(raw: float, windows: int, profile: Profile) -> float:
    null = -profile.fn * windows
    perfect = profile.tp * windows
    return 100.0 * (raw - null) / (perfect - null)


def optimise(series: Sequence[Labelled], scores: Sequence[Sequence[float]], profile: Profile,
             ) -> Result:  # fmt: skip
    """Sweep every distinct anomaly score as the threshold (a row is detected when its score is
    ≥ the threshold) and keep the best total; ties go to the higher threshold."""
    points: list[tuple[float, int, int, float]] = []
    for k, (labelled, values) in enumerate(zip(series, scores, strict=True)):
        for j, row in enumerate(labelled.rows):
            points.append((values[row], k, labelled.window_of[j], labelled.weight[j]))
    points.sort(key=lambda p: -p[0])
    windows = sum(s.windows for s in series)
    total = -profile.fn * windows
    best_total, best_threshold = total, math.inf
    found: dict[tuple[int, int], float] = {}
    for n, (value, k, window, weight) in enumerate(points):
        if window < 0:
            total += profile.fp * weight
        else:
            earned = profile.tp * weight
            before = found.get((k, window))
            if before is None:
                total += earned + profile.fn
                found[(k, window)] = earned
            elif earned > before:
                total += earned - before
                found[(k, window)] = earned
        last_of_tie = n + 1 == len(points) or points[n + 1][0] != value
        if last_of_tie and total > best_total:
            best_total, best_threshold = total, value
    return _result(series, scores, profile, best_threshold, best_total)


def score_at(series: Sequence[Labelled], scores: Sequence[Sequence[float]], profile: Profile,
             threshold: float) -> Result:  # fmt: skip
    """The profile's outcome at a given threshold (for scoring held-out series)."""
    raw = 0.0
    for labelled, values in zip(series, scores, strict=True):
        raw += _series_total(labelled, values, profile, threshold)[0]
    return _result(series, scores, profile, threshold, raw)


def _series_total(labelled: Labelled, values: Sequence[float], profile: Profile,
                  threshold: float) -> tuple[float, int, int]:  # fmt: skip
    """(raw score, windows detected, false positives) of one series at a threshold."""
    best: dict[int, float] = {}
    raw, false_positives = 0.0, 0
    for j, row in enumerate(labelled.rows):
        if values[row] < threshold:
            continue
        window = labelled.window_of[j]
        if window < 0:
            raw += profile.fp * labelled.weight[j]
            false_positives += 1
        else:
            best[window] = max(best.get(window, -math.inf), profile.tp * labelled.weight[j])
    raw += sum(best.values()) - profile.fn * (labelled.windows - len(best))
    return raw, len(best), false_positives


def _result(series: Sequence[Labelled], scores: Sequence[Sequence[float]], profile: Profile,
            threshold: float, raw: float) -> Result:  # fmt: skip
    groups: dict[str, list[float]] = {}
    detected = false_positives = 0
    for labelled, values in zip(series, scores, strict=True):
        part, found, fps = _series_total(labelled, values, profile, threshold)
        detected += found
        false_positives += fps
        tally = groups.setdefault(labelled.group, [0.0, 0.0, 0.0])
        tally[0] += part
        tally[1] += labelled.windows
        tally[2] += fps
    windows = sum(s.windows for s in series)
    by_group = {
        group: (normalise(raw_g, int(n), profile) if n else None, int(fps))
        for group, (raw_g, n, fps) in sorted(groups.items())
    }
    score = normalise(raw, windows, profile) if windows else 0.0
    return Result(profile, threshold, raw, score, detected, windows - detected,
                  false_positives, by_group)  # fmt: skip
