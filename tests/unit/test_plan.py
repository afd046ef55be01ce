"""The capacity planner on worked examples; every expected figure is derived in the comments."""

from __future__ import annotations

import pytest

from kaipiao.ops.plan import PlanInput, plan, render


def test_a_million_a_day_at_ten_times_peak_with_800_ms_latency() -> None:
    forecast = PlanInput(invoices_per_day=1_000_000, peak_factor=10, latency_mean_s=0.8,
                         latency_p99_s=5.0, quota_per_s=300, payload_bytes=2048,
                         retention_years=10, replicas=2)  # fmt: skip
    result = plan(forecast)
    v = result.value
    # 1,000,000 / 86,400 s = 11.574/s on average; × 10 = 115.74/s at the peak.
    assert v("average arrivals") == pytest.approx(11.574, abs=1e-3)
    assert v("peak arrivals") == pytest.approx(115.74, abs=1e-2)
    # 115.74 < quota 300: issuance keeps up, no backlog grows.
    assert v("issuance at the peak") == pytest.approx(115.74, abs=1e-2)
    assert v("backlog growth at the peak") == 0
    # 0.5% of calls fail and are retried: 115.74 / 0.995 = 116.32 calls/s.
    assert v("platform calls at the peak") == pytest.approx(116.32, abs=1e-2)
    # Little's law: 116.32 × 0.8 s = 93.06 in flight; at the p99, 116.32 × 5 s = 581.6.
    assert v("calls in flight, mean latency") == pytest.approx(93.06, abs=1e-2)
    assert v("calls in flight, platform at its p99") == pytest.approx(581.6, abs=0.1)
    # CPU: 115.74 × 2.5 ms = 0.289 cores of worker; ⌈0.289 / 0.6⌉ = 1 < 2 replicas → 2 workers,
    # each allowing ⌈581.6 / 2⌉ = 291 calls in flight.
    assert v("worker CPU at the peak") == pytest.approx(0.2894, abs=1e-3)
    assert v("worker processes") == 2
    assert v("in-flight limit per worker") == 291
    # API: 115.74 / 713 req/s per core = 0.162 cores → 2 API processes (the replicas).
    assert v("API processes") == 2
    # 4 processes × pool 40 = 160 connections: more than PostgreSQL's default 100.
    assert v("database connections") == 160
    # Writes: 115.74 × 3 = 347.2 fsync/s; each invoice stores 2048 + 600 + 3 × 350 = 3,698 B,
    # written twice (WAL, table) = 7,396 B → 115.74 × 7,396 / 4,096 = 209.0 pages/s; 556.2 IOPS.
    assert v("commits at the peak, no grouping") == pytest.approx(347.2, abs=0.1)
    assert v("write IOPS at the peak") == pytest.approx(556.2, abs=0.1)
    # Storage: 1e6 × 365 × 3,698 B × 1.5 = 2,024.7 GB a year; × 10 years = 20,247 GB.
    assert v("storage per year") == pytest.approx(2024.7, abs=0.1)
    assert v("storage for the retention period") == pytest.approx(20247, abs=1)
    # Memory: 135 MiB + 291 × 40 KiB = 146.4 MiB a worker; 2 × 146.4 + 2 × 110 = 512.7 MiB.
    assert v("memory in all") == pytest.approx(512.7, abs=0.1)
    # Headroom: connections 100 / 160 = 0.625 is the only figure below 1: it breaks first.
    # The quota has 300 / 116.32 = 2.58; the in-flight limit 500 / 291 = 1.72.
    assert result.breaks_first.resource == "PostgreSQL max_connections"
    assert result.breaks_first.ratio == pytest.approx(0.625)
    ratios = {h.resource: h.ratio for h in result.headroom}
    assert ratios["platform quota (calls/s)"] == pytest.approx(2.579, abs=1e-3)
    assert ratios["in-flight limit per worker"] == pytest.approx(1.718, abs=1e-3)
    # The field rules: 115.74 / 100 + 100 = 101.2 threads; users = ⌈115.74 × 0.8⌉ = 93 →
    # 93 × 3 + 500 = 779 connections; 115.74 × 2,048 / 512 = 463.0 IOPS.
    rules = {r.rule.split(" =")[0]: r.value for r in result.rules}
    assert rules["thread pool"] == pytest.approx(101.16, abs=1e-2)
    assert rules["connection pool"] == 779
    assert rules["IOPS"] == pytest.approx(462.96, abs=1e-2)
    text = render(forecast, result)
    assert "What breaks first: PostgreSQL max_connections breaks (0.62× headroom)" in text
    assert "Little: 116.3 × 5 s" in text


def test_a_peak_above_the_quota_grows_a_backlog_and_a_slow_platform_needs_more_in_flight() -> None:
    forecast = PlanInput(invoices_per_day=5_000_000, peak_factor=10, latency_mean_s=0.8,
                         latency_p99_s=15.0, quota_per_s=300)  # fmt: skip
    result = plan(forecast)
    v = result.value
    # 5e6 / 86,400 = 57.87/s; × 10 = 578.7/s, above the 300/s quota: issuance is capped at 300
    # and the backlog grows 278.7/s while the peak lasts, draining at 300 − 57.87 = 242.1/s.
    assert v("peak arrivals") == pytest.approx(578.7, abs=0.1)
    assert v("issuance at the peak") == 300
    assert v("backlog growth at the peak") == pytest.approx(278.7, abs=0.1)
    # 300 / 0.995 = 301.5 calls/s × 15 s = 4,523 in flight at the p99; ⌈4,523 / 2⌉ = 2,262 a
    # worker, past the default limit of 500: the planner says to raise it.
    assert v("in-flight limit per worker") == 2262
    assert any("--max-in-flight ≥ 2,262" in n for n in result.notes)
    assert any("drains at 242.1/s" in n for n in result.notes)
    # Two things break: the quota (demand 578.7 / 0.995 = 581.6 calls/s: 300 / 581.6 = 0.516)
    # and, first, the in-flight limit (500 / 2,262 = 0.221): with the default limit a platform
    # at its p99 would cap issuance at 2 × 500 / 15 s = 67/s, far below the quota.
    ratios = {h.resource: h.ratio for h in result.headroom}
    assert ratios["platform quota (calls/s)"] == pytest.approx(0.516, abs=1e-3)
    assert result.breaks_first.resource == "in-flight limit per worker"
    assert result.breaks_first.ratio == pytest.approx(0.221, abs=1e-3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"invoices_per_day": 0}, "invoices per day"),
        ({"peak_factor": 0.5}, "peak factor"),
        ({"latency_p99_s": 0.1}, "mean ≤ p99"),
        ({"failure_rate": 1.0}, "failure rate"),
    ],
)
def test_impossible_forecasts_are_refused_with_the_reason(change: dict, message: str) -> None:  # type: ignore[type-arg]
    args = {"invoices_per_day": 1000, "peak_factor": 2, "latency_mean_s": 0.8,
            "latency_p99_s": 5.0, "quota_per_s": 10} | change  # fmt: skip
    with pytest.raises(ValueError, match=message):
        PlanInput(**args)
