"""The drills' early-warning verdict (kaipiao/ops/drill_warning.py), from heartbeats made up here:
a fault drill passes only when a warning came during the fault and before the breaker opened."""

from __future__ import annotations

from typing import Any

from kaipiao.ops.drill_result import Result, Window
from kaipiao.ops.drill_warning import WarningLog, assess_warnings

STARTED = 1000.0
WINDOW = Window(fault_start=18.0, fault_end=36.0, load_end=60.0)


def verdict(warnings: dict[str, float], breakers: dict[str, float],
            scenario: str = "failure-spike") -> tuple[Result, Any]:  # fmt: skip
    log = WarningLog()
    beat = {
        "warnings": [{"signal": s, "since": STARTED + t} for s, t in warnings.items()],
        "breaker_first_open": {r: STARTED + t for r, t in breakers.items()},
    }
    log.read([("worker", None, beat)])
    result = Result("kaipiao")
    assess_warnings(result, log, STARTED, WINDOW, scenario)
    return result, next(c for c in result.checks if c.advisory)


def test_a_warning_in_the_fault_before_the_breaker_passes_with_its_lead() -> None:
    result, check = verdict({"failure_share:44": 24.0, "failure_share:31": 25.0}, {"44": 32.0})
    assert check.ok, check
    assert (result.first_warning_s, result.breaker_open_s, result.warning_lead_s) == (
        24.0,
        32.0,
        8.0,
    )
    assert "lead 8.0 s" in check.detail


def test_a_breaker_that_never_opened_leaves_no_lead_and_fails() -> None:
    result, check = verdict({"latency_p95:31": 25.0}, {}, "slow-platform")
    assert not check.ok and result.warning_lead_s is None
    assert "the breaker never opened" in check.detail


def test_a_warning_after_the_breaker_fails() -> None:
    result, check = verdict({"failure_share:44": 33.0}, {"44": 32.0})
    assert not check.ok and result.warning_lead_s == -1.0


def test_a_warning_in_the_calm_fails_even_with_a_lead() -> None:
    _, check = verdict({"backlog": 5.0, "failure_share:44": 24.0}, {"44": 32.0})
    assert not check.ok and "before the fault" in check.detail


def test_a_clean_run_passes_only_without_any_warning() -> None:
    _, quiet = verdict({}, {}, "clean")
    _, noisy = verdict({"latency_p95:31": 100.0}, {}, "clean")
    assert quiet.ok and not noisy.ok
