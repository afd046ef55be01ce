"""The online early warning: the board's gates and hold time, the per-second series, the
capacity forecast, and the drill's daily shape."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from kaipiao.engine.early_warning import EarlyWarning
from kaipiao.ops.drill_warning import DAY_SHAPE, day_factor, learn_s
from kaipiao.warn import forecast as fc
from kaipiao.warn.online import BoardConfig, WarningBoard, kind_of
from kaipiao.warn.telemetry import CallSeries, RateSeries


def feed(board: WarningBoard, signal: str, values: list[float], start: float = 0.0) -> list[float]:
    """Times at which a warning was raised."""
    return [start + i for i, v in enumerate(values)
            if board.observe(signal, start + i, v) is not None]  # fmt: skip


def test_a_noisy_steady_series_never_warns_and_a_material_jump_warns_once() -> None:
    rng = random.Random(3)
    board = WarningBoard(BoardConfig(learn=20, hold_s=30))
    calm = [0.4 + rng.gauss(0, 0.05) for _ in range(300)]
    assert feed(board, "latency_p95:44", calm) == []
    raised = feed(board, "latency_p95:44", [3.0] * 20, start=300)
    assert raised == [302]  # one warning for the whole departure, once it has held 3 s
    [active] = board.active()
    assert active.signal == "latency_p95:44" and active.since == 302 and active.last >= 302
    assert board.expire(310) == []
    assert [w.signal for w in board.expire(active.last + 30)] == ["latency_p95:44"]


def test_an_anomalous_but_immaterial_change_does_not_warn() -> None:
    # A series with almost no spread: +0.2 s is many sigmas, but under the latency gate.
    board = WarningBoard(BoardConfig(learn=10))
    assert feed(board, "latency_p95:31", [0.3] * 100 + [0.5] * 10) == []
    # A faster platform is no warning either.
    assert feed(board, "latency_p95:31", [0.01] * 10, start=110) == []


def test_nothing_warns_while_learning() -> None:
    board = WarningBoard(BoardConfig(learn=50))
    assert feed(board, "backlog", [1.0] * 10 + [10_000.0] * 30) == []


def test_intake_warns_on_a_surge_not_on_a_slow_daily_ramp() -> None:
    board = WarningBoard(BoardConfig(learn=60))
    # A day replayed at 1 s per 2.4 minutes (10 minutes a day): the morning ramp takes ~75 s.
    day = [20 * day_factor(t / 600) for t in range(1200)]
    assert feed(board, "intake:31", day) == []
    assert feed(board, "intake:31", [400.0] * 5, start=1200) == [1200]


def test_unknown_signal_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal kind"):
        kind_of("temperature:1")


def test_call_series_gives_p95_and_shares_per_province() -> None:
    calls = CallSeries(latency_s=5, share_s=10, min_calls=5, latency_calls=10)
    for i in range(20):
        outcome = "unavailable" if i % 4 == 0 else "throttled" if i % 5 == 1 else "issued"
        calls.record(100 + i * 0.4, "44", outcome, 0.1 * (i + 1))
    calls.record(100.0, "31", "issued", 0.2)  # too few calls: no value for 31
    values = calls.values(108.0)
    assert values["failure_share:44"] == pytest.approx(5 / 20)
    assert values["throttled_share:44"] == pytest.approx(3 / 20)  # 1, 6, 11 (16 failed)
    assert values["latency_p95:44"] == pytest.approx(2.0)  # the last 5 s: 0.9 … 2.0 s
    assert calls.counts["failure_share:44"] == 20  # what the binomial test weighs
    assert not any(k.endswith(":31") for k in values)
    assert calls.values(200.0) == {}  # forgotten


def test_a_thin_latency_window_reaches_back_to_enough_calls() -> None:
    # 2 calls a second: 5 s hold 10 calls, whose p95 is their maximum; the series reaches back
    # for the last 40 calls (at most 30 s), so one slow call no longer is the p95.
    calls = CallSeries(latency_s=5, latency_calls=40, latency_max_s=30)
    by_time = CallSeries(latency_s=5, latency_calls=0)  # the 5-s window alone
    for i in range(60):
        for series in (calls, by_time):
            series.record(100 + i * 0.5, "44", "issued", 9.0 if i == 58 else 1.0)
    assert calls.values(130.0)["latency_p95:44"] == pytest.approx(1.0)
    assert by_time.values(130.0)["latency_p95:44"] == pytest.approx(9.0)


def test_rate_series_waits_for_a_full_span_then_counts_per_key() -> None:
    rates = RateSeries("intake", span_s=10)
    rates.start(0.0)
    for i in range(50):
        rates.record(i * 0.2, "31")
    assert rates.values(5.0) == {}
    assert rates.values(10.0) == {"intake:31": pytest.approx(5.0)}


def test_early_warning_keeps_each_breakers_first_opening_and_reports_warnings() -> None:
    opened = {"44": 0}
    backlog = iter([10.0] * 30 + [900.0] * 5)

    async def read_backlog() -> int:
        return int(next(backlog))

    early = EarlyWarning(BoardConfig(learn=10), backlog=read_backlog,
                         breakers_opened=lambda: dict(opened))  # fmt: skip

    async def run() -> None:
        for t in range(35):
            if t == 33:
                opened["44"] = 1
            await early.tick(1000.0 + t)

    asyncio.run(run())
    report = early.report()
    assert [w["signal"] for w in report["warnings"]] == ["backlog"]
    assert report["warnings"][0]["since"] == 1030.0
    assert report["breaker_first_open"] == {"44": 1033.0}


def test_the_line_forecast_follows_a_trend_and_says_when_it_crosses() -> None:
    hours = [100.0, 110, 120, 130, 140, 150]
    ahead = fc.forecast(hours, 10)
    assert ahead.model == "line"
    assert ahead.values[0] == pytest.approx(160)
    assert fc.hours_until(ahead.values, 185) == 4
    assert fc.hours_until(ahead.values, 10_000) is None


def test_the_daily_forecast_repeats_yesterday_grown() -> None:
    day = [10.0 * (1 + math.sin(h / 24 * 2 * math.pi)) + 1 for h in range(24)]
    hours = day + [v * 1.1 for v in day]
    ahead = fc.forecast(hours, 24)
    assert ahead.model == "daily"
    assert ahead.values[5] == pytest.approx(day[5] * 1.1 * 1.1 ** (6 / 24))
    # On a perfectly repeating day the daily model is exact; the naive one is not.
    flat = day * 5
    error = fc.evaluate(flat, 6)
    assert error.model_error == pytest.approx(0.0) and error.naive_error > 0.1


def test_the_backlog_slo_is_crossed_when_the_excess_exceeds_five_minutes_of_issuing() -> None:
    capacity = 3600.0  # 1 invoice/s: 5 minutes of issuing is 300 invoices
    assert fc.hours_until_backlog([3000, 3800, 3900], capacity, 300) == 3  # 200, then 500
    assert fc.hours_until_backlog([3500] * 10, capacity, 300) is None


def test_hourly_sums_and_means() -> None:
    rows = [(0.0, 1.0), (1800.0, 2.0), (7300.0, 4.0)]
    assert fc.hourly(rows) == [3.0, 0.0, 4.0]
    assert fc.hourly(rows, "mean") == [1.5, 1.5, 4.0]


def test_the_day_shape_averages_one_and_learning_fits_the_drill() -> None:
    assert sum(day_factor(i / 240) for i in range(240)) / 240 == pytest.approx(1.0, abs=0.01)
    assert max(DAY_SHAPE) / min(DAY_SHAPE) > 8
    assert learn_s(36) < 36 * 0.3 and learn_s(3600) == 60 and learn_s(10) == 5
