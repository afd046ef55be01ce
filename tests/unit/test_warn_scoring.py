"""The NAB scorer on hand-built series whose expected scores follow from the published rules."""

from __future__ import annotations

import math

import pytest

from kaipiao.warn.scoring import (
    PROFILES,
    Labelled,
    Profile,
    label,
    optimise,
    probation_rows,
    scaled_sigmoid,
    score_at,
)

STANDARD, LOW_FP, LOW_FN = PROFILES
LENGTH = 1000  # probation: 15% = 150 rows
WINDOWS = [(400, 449), (700, 749)]


def _series(*detections: int) -> list[float]:
    scores = [0.0] * LENGTH
    for row in detections:
        scores[row] = 1.0
    return scores


def _labelled() -> list[Labelled]:
    return [label("g", LENGTH, WINDOWS)]


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probation_rows(1000) == 150
    assert probation_rows(4032) == 604
    assert probation_rows(15902) == 750


def test_scaled_sigmoid_is_worth_most_early_and_costs_fully_far_away() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(3.5) == -1.0


@pytest.mark.parametrize("profile", PROFILES)
def test_no_detection_scores_zero(profile: Profile) -> None:
    result = optimise(_labelled(), [_series()], profile)
    assert result.score == pytest.approx(0.0)
    assert result.missed == 2


@pytest.mark.parametrize("profile", PROFILES)
def test_detecting_each_window_at_its_first_row_scores_100(profile: Profile) -> None:
    result = optimise(_labelled(), [_series(400, 700)], profile)
    assert result.score == pytest.approx(100.0)
    assert (result.detected, result.false_positives) == (2, 0)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    early_only = score_at(_labelled(), [_series(400, 700)], STANDARD, 0.5)
    with_late = score_at(_labelled(), [_series(400, 440, 700, 745)], STANDARD, 0.5)
    assert with_late.raw == pytest.approx(early_only.raw)
    # A detection at the middle of a window is worth σ(-0.5)/σ(-1) = 0.859 of the first row.
    middle = score_at(_labelled(), [_series(425, 700)], STANDARD, 0.5)
    assert middle.raw == pytest.approx(1.0 + scaled_sigmoid(-25 / 50) / scaled_sigmoid(-1.0))


def test_a_false_positive_just_after_a_window_costs_less_than_one_far_away() -> None:
    perfect = score_at(_labelled(), [_series(400, 700)], STANDARD, 0.5).raw
    near = score_at(_labelled(), [_series(400, 452, 700)], STANDARD, 0.5).raw
    far = score_at(_labelled(), [_series(400, 650, 700)], STANDARD, 0.5).raw
    before_any = score_at(_labelled(), [_series(300, 400, 700)], STANDARD, 0.5).raw
    assert perfect > near > far
    assert far == pytest.approx(perfect - STANDARD.fp)  # (650 - 449) / 49 > 3: the full cost
    assert before_any == pytest.approx(perfect - STANDARD.fp)
    # 3 rows after the end of a 50-row window: σ(3/49) costs only 0.11 × 0.153.
    assert perfect - near == pytest.approx(-STANDARD.fp * scaled_sigmoid(3 / 49))


def test_detections_in_the_probationary_period_are_ignored() -> None:
    assert score_at(_labelled(), [_series(10, 400, 700)], STANDARD, 0.5).false_positives == 0


def test_the_threshold_is_chosen_over_the_whole_corpus() -> None:
    # Series a: its window's onset scores 0.9, noise elsewhere scores 0.8 on 20 rows. Series b:
    # onset 0.7. Down to 0.9 gains a; down to 0.8 costs 20 FPs × 0.11 = 2.2 > b's gain of 2.
    a = [0.0] * LENGTH
    a[400] = 0.9
    for row in range(200, 220):
        a[row] = 0.8
    b = [0.0] * LENGTH
    b[400] = 0.7
    series = [label("a", LENGTH, [(400, 449)]), label("b", LENGTH, [(400, 449)])]
    result = optimise(series, [a, b], STANDARD)
    assert result.threshold == 0.9
    assert (result.detected, result.false_positives) == (1, 0)
    assert result.score == pytest.approx(50.0)
    # Under reward-low-FN a miss costs 2, more than the 20 false positives: it goes to 0.7.
    assert optimise(series, [a, b], LOW_FN).threshold == 0.7
    assert optimise(series, [a, b], LOW_FP).threshold == 0.9


def test_groups_are_scored_at_the_corpus_threshold() -> None:
    series = [label("hit", LENGTH, [(400, 449)]), label("quiet", LENGTH, [])]
    quiet = [0.0] * LENGTH
    quiet[500] = 1.0
    result = score_at(series, [_series(400), quiet], STANDARD, 0.5)
    assert result.by_group["hit"] == (pytest.approx(100.0), 0)
    assert result.by_group["quiet"] == (None, 1)
