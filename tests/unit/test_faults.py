import random

import pytest

from kaipiao.sandbox.faults import PROFILES, FaultConfigError, Latency, build_faults


def test_profiles_cover_the_field_report() -> None:
    assert {"normal", "degraded", "outage", "ambiguous", "throttled", "regional"} <= set(PROFILES)
    assert PROFILES["normal"].failure_rate == 0.005
    assert PROFILES["degraded"].failure_rate == 0.087
    assert PROFILES["ambiguous"].dedup is False
    assert PROFILES["outage"].outage == "refuse"


def test_normal_latency_has_mean_800_ms() -> None:
    rng = random.Random(1)
    draws = [PROFILES["normal"].latency.draw(rng) for _ in range(50_000)]
    assert 770 < sum(draws) / len(draws) < 830


def test_degraded_has_a_heavy_tail_with_a_fifth_over_5_s() -> None:
    rng = random.Random(2)
    draws = [PROFILES["degraded"].latency.draw(rng) for _ in range(50_000)]
    share_over_5s = sum(d > 5000 for d in draws) / len(draws)
    assert 0.18 < share_over_5s < 0.22
    assert max(draws) == PROFILES["degraded"].latency.cap_ms


def test_regional_latency_depends_on_the_seller_region() -> None:
    faults = PROFILES["regional"]
    rng = random.Random(3)
    same = [faults.call_latency_s(rng, "31") for _ in range(1000)]
    cross = [faults.call_latency_s(rng, "44") for _ in range(1000)]
    assert min(same) >= 0.150 and max(same) <= 0.220
    assert min(cross) >= 0.780 and max(cross) <= 0.920


def test_same_seed_same_draws() -> None:
    latency = Latency(kind="lognormal", mean_ms=100)
    a = [latency.draw(random.Random(7)) for _ in range(3)]
    b = [latency.draw(random.Random(7)) for _ in range(3)]
    assert a == b


def test_knobs_apply_on_top_of_a_profile_or_the_current_faults() -> None:
    faults = build_faults({"profile": "normal", "failure_rate": 0.5})
    assert faults.profile == "normal" and faults.failure_rate == 0.5
    assert faults.latency.mean_ms == 800
    again = build_faults({"latency": {"kind": "fixed", "mean_ms": 5}}, faults)
    assert again.failure_rate == 0.5 and again.latency.kind == "fixed"
    assert again.profile == "custom"
    assert build_faults({"down_regions": ["44"]}).down_regions == ("44",)


@pytest.mark.parametrize(
    "spec",
    [
        {"profile": "nope"},
        {"failure_rate": 2},
        {"failure_rate": "x"},
        {"latency": {"kind": "weird"}},
        {"latency": 5},
        {"latency": {"mean_ms": -1}},
        {"unknown_knob": 1},
        {"outage": "sometimes"},
        {"failure_kinds": ["418"]},
        {"quota_per_s": 0},
        {"quota_burst": 0},
        {"dedup": "yes"},
    ],
)
def test_bad_knobs_are_refused(spec: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(FaultConfigError):
        build_faults(spec)
