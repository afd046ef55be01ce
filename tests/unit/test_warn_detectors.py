"""The detectors on small synthetic series: bounded, causal, and quiet until something changes."""

from __future__ import annotations

import io
import math
import random

import pytest

from kaipiao.warn.context import ContextDetector
from kaipiao.warn.detector import Detector
from kaipiao.warn.entropy import RelativeEntropy, chi_square_cdf, chi_square_quantile
from kaipiao.warn.gaussian import WindowedGaussian
from kaipiao.warn.likelihood import Likelihood
from kaipiao.warn.refractory import Refractory
from kaipiao.warn.registry import DETECTORS, make_detector
from kaipiao.warn.stream import score_csv

STEP = 300.0  # five-minute series, as most of NAB


def _daily(n: int, seed: int = 7) -> list[float]:
    """A noisy daily shape (288 values a day)."""
    rng = random.Random(seed)
    return [50 + 20 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 1) for i in range(n)]


def _scores(detector: Detector, values: list[float]) -> list[float]:
    return [detector.update(i * STEP, v) for i, v in enumerate(values)]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_scores_are_in_0_1_and_use_only_the_past(name: str) -> None:
    values = _daily(900)
    changed = values[:600] + [v * 3 + 40 for v in values[600:]]
    first = _scores(make_detector(name), values)
    second = _scores(make_detector(name), changed)
    assert all(0.0 <= s <= 1.0 for s in first + second)
    # Rewriting the future changes nothing that was scored before it.
    assert first[:600] == second[:600]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_level_shift_scores_above_everything_before_it(name: str) -> None:
    values = _daily(1200)
    values[900:] = [v + 60 for v in values[900:]]  # far outside anything seen
    scores = _scores(make_detector(name), values)
    assert max(scores[900:905]) > max(scores[700:900])


def test_unknown_detector_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        make_detector("nope")


def test_windowed_gaussian_is_the_two_sided_normal_probability() -> None:
    detector = WindowedGaussian(window=4, warmup=4)
    for v in (1.0, -1.0, 1.0, -1.0):  # mean 0, standard deviation 1
        assert detector.update(0.0, v) == 0.0
    assert detector.update(0.0, 2.0) == pytest.approx(math.erf(2 / math.sqrt(2)))


def test_context_detector_learns_a_repeating_pattern_and_flags_a_new_one() -> None:
    detector = ContextDetector(bins=4, order=2, warmup=0)
    pattern = [0.0, 1.0, 2.0, 3.0] * 30
    scores = _scores(detector, pattern)
    assert scores[-8:] == [0.0] * 8  # every next value was predicted by its context
    assert detector.update(0.0, 0.0) == 0.0  # 3 → 0 as always
    assert detector.update(0.0, 3.0) > 0.0  # 0 → 3 never followed the context
    assert detector.update(0.0, 9.0) == 1.0  # beyond the range seen so far


def test_likelihood_stays_quiet_on_a_steadily_high_raw_score() -> None:
    class Constant:
        def __init__(self) -> None:
            self.level = 0.6

        def update(self, timestamp: float, value: float) -> float:
            return self.level

    raw = Constant()
    likelihood = Likelihood(raw, short=5, long=100, learn=20)
    assert max(likelihood.update(0.0, 0.0) for _ in range(200)) <= 0.5 + 1e-9
    raw.level = 0.9
    assert likelihood.update(0.0, 0.0) > 0.99


def test_refractory_reports_the_first_crossing_then_rests() -> None:
    class Replay:
        def __init__(self, scores: list[float]) -> None:
            self.scores = iter(scores)

        def update(self, timestamp: float, value: float) -> float:
            return next(self.scores)

    raw = [0.1, 0.99, 0.99, 0.99, 0.1, 0.99, 0.2]
    refractory = Refractory(Replay(raw), level=0.95, rest=3)
    assert [refractory.update(0.0, 0.0) for _ in raw] == [0.1, 0.99, 0.0, 0.0, 0.0, 0.99, 0.0]


def test_chi_square_closed_form_matches_tabled_values() -> None:
    assert chi_square_quantile(0.99, 4) == pytest.approx(13.277, abs=1e-3)
    assert chi_square_cdf(5.991, 2) == pytest.approx(0.95, abs=1e-4)


def test_relative_entropy_flags_a_new_distribution_once_it_fills_the_window() -> None:
    rng = random.Random(3)
    detector = RelativeEntropy(window=20, bins=5)
    before = [detector.update(0.0, rng.choice((1.0, 2.0, 9.0, 10.0))) for _ in range(400)]
    after = [detector.update(0.0, rng.uniform(4.0, 6.0)) for _ in range(20)]
    assert max(before[-100:]) < 1.0
    assert max(after) == 1.0


def test_score_csv_writes_one_row_per_input_row() -> None:
    source = io.StringIO("timestamp,value\n2026-01-01 00:00:00,1.5\n2026-01-01 00:05:00,2\n")
    sink = io.StringIO()
    assert score_csv(source, sink, make_detector("gaussian")) == 2
    lines = sink.getvalue().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert lines[1] == "2026-01-01 00:00:00,1.5,0.000000"
    assert lines[2].startswith("2026-01-01 00:05:00,2,")


def test_score_csv_names_a_bad_row() -> None:
    source = io.StringIO("timestamp,value\n2026-01-01 00:00:00,x\n")
    with pytest.raises(ValueError, match="row 2"):
        score_csv(source, io.StringIO(), make_detector("gaussian"))
