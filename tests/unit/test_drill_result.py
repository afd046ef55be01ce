"""The drill's verdicts on hand-made outcomes: each invariant catches what it is meant to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kaipiao.ops.drill_result import PlatformTruth, Tick, Window, assess_kaipiao, assess_naive
from kaipiao.ops.loadgen import TIMEOUT, Sample

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = Window(fault_start=3.0, fault_end=6.0, load_end=10.0)
SELLERS = {"s0": 0}


def sample(n: int, status: int = 202, latency: float = 0.01) -> Sample:
    return Sample(sent_at=float(n), latency_s=latency, status=status, order_id=f"O-{n}", seller=0)


def row(n: int, status: str = "issued", number: str | None = None) -> dict[str, Any]:
    created = T0 + timedelta(seconds=n)
    return {"seller_id": "s0", "order_id": f"O-{n}", "kind": "blue", "status": status,
            "serial_no": f"S{n}", "invoice_number": number or (f"N{n}" if status == "issued" else None),
            "created_at": created, "issued_at": created + timedelta(seconds=0.5) if status == "issued" else None}  # fmt: skip


def truth(orders: dict[int, list[str]], by_order: int = 0) -> PlatformTruth:
    return PlatformTruth({(0, f"O-{n}"): numbers for n, numbers in orders.items()}, by_order, 0)


def checks(result: Any) -> dict[str, bool]:
    return {c.name: c.ok for c in result.checks}


def ticks(*backlog: int) -> list[Tick]:
    return [Tick(float(t), b, 0) for t, b in enumerate(backlog)]


def assess(samples: list[Sample], rows: list[dict[str, Any]], platform: PlatformTruth,
           timeline: list[Tick] | None = None) -> Any:  # fmt: skip
    return assess_kaipiao(samples, timeline or ticks(1, 1, 1, 9, 9, 9, 4, 1, 1, 1, 0), WINDOW,
                          rows, SELLERS, platform, started_at=T0.timestamp())  # fmt: skip


def test_a_clean_run_passes_and_times_are_measured() -> None:
    result = assess([sample(n) for n in range(10)], [row(n) for n in range(10)],
                    truth({n: [f"N{n}"] for n in range(10)}))  # fmt: skip
    assert result.passed, result.checks
    assert result.issued == 10
    assert result.issue_p99 == 0.5
    assert result.backlog_peak == 9
    # The calm backlog peaked at 1 (+5 of slack): at 6 s, as the fault ends, it is 4, under that.
    assert result.recovery_s == 0.0
    assert result.drain_s == 0.0


def test_an_accepted_request_missing_from_the_store_is_lost() -> None:
    result = assess([sample(n) for n in range(3)], [row(0), row(1)],
                    truth({0: ["N0"], 1: ["N1"]}))  # fmt: skip
    assert result.lost == 1
    assert checks(result)["no loss"] is False


def test_a_second_platform_invoice_for_an_order_is_a_duplicate() -> None:
    result = assess([sample(0)], [row(0)], truth({0: ["N0", "N9"]}, by_order=1))
    assert result.duplicates == 1
    assert checks(result)["no duplicates"] is False


def test_a_number_the_platform_does_not_know_is_a_disagreement() -> None:
    result = assess([sample(0), sample(1)], [row(0, number="N-local"), row(1, "rejected")],
                    truth({0: ["N0"], 1: ["N1"]}))  # fmt: skip
    # 0: kaipiao's number is not the platform's; 1: rejected locally, issued on the platform.
    assert result.disagree == 2
    assert checks(result)["kaipiao agrees with the platform"] is False


def test_waiting_invoices_are_not_lost_but_the_drill_is_not_drained() -> None:
    result = assess([sample(0), sample(1)], [row(0), row(1, "attention")], truth({0: ["N0"]}))
    assert result.lost == 0
    assert result.waiting == 1
    assert checks(result) == {"no loss": True, "no duplicates": True,
                              "kaipiao agrees with the platform": True,
                              "callers never time out": True, "drained": False}  # fmt: skip


def test_a_caller_timeout_breaks_intake_never_waits() -> None:
    result = assess([sample(0), sample(1, status=TIMEOUT, latency=5.0)], [row(0)],
                    truth({0: ["N0"]}))  # fmt: skip
    assert result.timeouts == 1
    assert checks(result)["callers never time out"] is False


def test_the_naive_row_counts_orders_without_invoice_and_errors() -> None:
    samples = [sample(0, 201), sample(1, 502), sample(2, TIMEOUT, 5.0), sample(3, 201)]
    # Order 2 timed out for the caller, yet the platform issued it twice (a retry after a lost
    # answer); order 1 got a 502 and has no invoice.
    result = assess_naive(samples, ticks(1, 2, 0), WINDOW,
                          truth({0: ["N0"], 2: ["N2", "N2b"], 3: ["N3"]}, by_order=1))  # fmt: skip
    assert (result.accepted, result.timeouts, result.server_errors) == (2, 1, 1)
    assert result.issued == 3
    assert result.without_invoice == 1
    assert result.duplicates == 1
    assert result.lost == 0


def test_a_store_restart_may_refuse_callers_but_never_answer_500() -> None:
    samples = [sample(0), sample(1, status=503), sample(2, status=-1)]
    allowed = assess_kaipiao(samples, ticks(0), WINDOW, [row(0)], SELLERS, truth({0: ["N0"]}),
                             started_at=T0.timestamp(), callers_may_fail=True)  # fmt: skip
    assert checks(allowed)["callers never time out"] is True
    broken = assess_kaipiao([*samples, sample(3, status=500)], ticks(0), WINDOW, [row(0)],
                            SELLERS, truth({0: ["N0"]}), started_at=T0.timestamp(),
                            callers_may_fail=True)  # fmt: skip
    assert checks(broken)["callers never time out"] is False
