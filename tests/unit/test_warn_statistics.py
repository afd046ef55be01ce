"""The statistics of the online early warning (issue 18), on simulated calls drawn from the
sandbox's own profiles (`sandbox/faults.py`): `normal` (lognormal latency, mean 800 ms, σ 0.5;
0.5% failures) as the calm, `degraded` (Pareto tail from 1.71 s, α 1.5; 8.7% failures) as the
fault. Calls are recorded when they complete, as the dispatcher records them, and the board is
fed once a second through the real `CallSeries` — so a clean 10 minutes must raise nothing, on
several seeds, and a step to the fault must warn within a bounded number of seconds."""

from __future__ import annotations

import heapq
import random

import pytest

from kaipiao.sandbox.faults import PROFILES
from kaipiao.warn.online import BoardConfig, WarningBoard
from kaipiao.warn.significance import CountTest, binomial_tail
from kaipiao.warn.telemetry import CallSeries

CALM, FAULT = PROFILES["normal"], PROFILES["degraded"]


def simulate(seed: int, seconds: int, *, per_s: float = 10.0, fault_at: float | None = None,
             fault: str = "both", learn: int = 60) -> list[tuple[float, str]]:  # fmt: skip
    """(time, signal) of every warning raised over `seconds` of calls at `per_s` a second per
    province (two provinces), the fault's profile from `fault_at` on: its failures, its latency
    or both."""
    rng = random.Random(seed)
    board = WarningBoard(BoardConfig(learn=learn, hold_s=120))
    calls = CallSeries()
    done: list[tuple[float, str, str, float]] = []  # completion time, region, outcome, latency
    t = 0.0
    while t < seconds:
        t += rng.expovariate(per_s * 2)
        region = rng.choice(("31", "44"))
        faulty = fault_at is not None and t >= fault_at
        failing = FAULT if faulty and fault in ("both", "failure") else CALM
        slow = FAULT if faulty and fault in ("both", "latency") else CALM
        latency = slow.call_latency_s(rng, region)
        outcome = "unavailable" if rng.random() < failing.failure_rate else "issued"
        heapq.heappush(done, (t + latency, region, outcome, latency))
    raised: list[tuple[float, str]] = []
    for second in range(1, seconds + 1):
        while done and done[0][0] <= second:
            at, region, outcome, latency = heapq.heappop(done)
            calls.record(at, region, outcome, latency)
        values = calls.values(float(second))
        for signal, value in sorted(values.items()):
            if board.observe(signal, second, value, calls.counts.get(signal)) is not None:
                raised.append((float(second), signal))
        board.expire(float(second))
    return raised


def test_the_binomial_tail_matches_hand_computed_values() -> None:
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(11, 10, 0.3) == 0.0
    assert binomial_tail(10, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_tail(1, 10, 0.1) == pytest.approx(1 - 0.9**10)
    assert binomial_tail(2, 3, 0.5) == pytest.approx(0.5)
    # Large n does not overflow; the tail at the mean is about a half.
    assert 0.4 < binomial_tail(5000, 10_000, 0.5) < 0.6


def test_a_few_failures_more_in_a_window_are_chance_a_real_rise_is_not() -> None:
    test = CountTest()
    # 3 of 100 at a 0.5% baseline: the old +3-points gate fired; chance explains it.
    assert not test.passes(0.03, 100, 0.005)
    # Never fewer than 5 events, however small the baseline.
    assert not test.passes(4 / 100, 100, 0.0)
    # 8.7% of 200 calls (a 10-s window at 20 calls/s) against 0.5%: far beyond chance.
    assert test.passes(17 / 200, 200, 0.005)
    # Twice the baseline but within its noise: no.
    assert not test.passes(0.10, 100, 0.05)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_ten_calm_minutes_at_ten_calls_a_second_raise_nothing(seed: int) -> None:
    assert simulate(seed, 600) == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_step_to_8_7_percent_failures_warns_within_fifteen_seconds(seed: int) -> None:
    raised = simulate(seed, 200, fault_at=120.0, fault="failure")
    assert raised, raised
    first_t, signal = raised[0]
    assert signal.startswith("failure_share:")
    assert 120.0 <= first_t <= 135.0, raised


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_slow_platforms_tail_warns_on_latency_within_fifteen_seconds(seed: int) -> None:
    raised = simulate(seed, 200, fault_at=120.0, fault="latency")
    assert raised, raised
    first_t, signal = raised[0]
    assert signal.startswith("latency_p95:")
    assert 120.0 <= first_t <= 135.0, raised


def test_latency_warns_only_when_it_persists() -> None:
    board = WarningBoard(BoardConfig(learn=20))
    for i in range(100):
        assert board.observe("latency_p95:31", i, 1.6 + 0.01 * (i % 3)) is None
    # Two seconds of a slow burst: anomalous and material, but not for long enough.
    assert board.observe("latency_p95:31", 100, 5.0) is None
    assert board.observe("latency_p95:31", 101, 5.0) is None
    assert board.observe("latency_p95:31", 102, 1.6) is None
    # Three in a row: a warning.
    results = [board.observe("latency_p95:31", 103 + i, 5.0) for i in range(3)]
    assert results[:2] == [None, None] and results[2] is not None


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("fault", ["failure", "latency"])
def test_a_young_baseline_does_not_swallow_the_fault(seed: int, fault: str) -> None:
    # A drill's shape: 36 s, learning 7 s, the fault from 10.8 s to 21.6 s, 20 calls/s per
    # province. The baseline is still a plain mean of a dozen values when the fault comes; fed
    # the fault at full weight it would catch up with it before the test did.
    raised = simulate(seed, 36, per_s=20.0, fault_at=10.8, fault=fault, learn=7)
    assert raised and 10.8 <= raised[0][0] <= 21.6, raised


def test_a_fault_does_not_become_its_own_baseline_within_the_fault() -> None:
    board = WarningBoard(BoardConfig(learn=20, hold_s=120))
    for t in range(20):
        board.observe("failure_share:31", t, 1 / 200, 200)
    raised = [board.observe("failure_share:31", 20 + t, 17 / 200, 200) for t in range(60)]
    assert raised[0] is not None
    # Still confirmed at the fault's last second: suspect values barely teach the baseline (fed
    # at full weight, it would reach ~5% within 20 s and the fault would look usual).
    [active] = board.active()
    assert active.last == 79
