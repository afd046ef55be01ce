"""What a drill measured, and the invariants checked against the platform's ground truth.

Inputs are plain data gathered by the runner: every request the load generator sent (`Sample`),
a timeline sampled once a second (`Tick`), kaipiao's stored invoices (none for the naive
gateway) and the sandbox's record of what it issued. The verdicts follow DESIGN §3:

- no loss: every request kaipiao accepted (2xx) is in its store, finished or visibly waiting;
- no duplicates: the platform issued at most one invoice per order and per serial;
- agreement: what kaipiao says was issued is what the platform issued, number for number, and
  every order the platform issued is `issued` in kaipiao (the field's 7.3% disagreement);
- callers never time out or see a server error: intake does not wait on the platform;
- drained: nothing is left waiting when the drill ends;
- for `region-outage`: the healthy region's intake-to-issue p99 during the fault stays within
  2× its calm p99 plus one second.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kaipiao.ops.loadgen import CONNECT_ERROR, TIMEOUT, Sample, percentile

WAITING = frozenset({"queued", "issuing", "attention", "reversing"})


@dataclass(frozen=True, slots=True)
class Tick:
    t: float  # seconds since the load started
    backlog: int  # kaipiao: queued + issuing; naive: requests in flight
    issued: int  # invoices issued so far


@dataclass(frozen=True, slots=True)
class Window:
    fault_start: float
    fault_end: float
    load_end: float


@dataclass(frozen=True, slots=True)
class PlatformTruth:
    """The sandbox's ground truth: invoice numbers per (seller index, order id), duplicates."""

    numbers: dict[tuple[int, str], list[str]]
    duplicates_by_order: int
    duplicates_by_serial: int
    calls: dict[str, int] = field(default_factory=dict)  # platform calls by endpoint:outcome

    @property
    def extra_invoices(self) -> int:
        """Invoices beyond the first for an order; a serial sent twice is among them (drills
        issue blue invoices only, each with an order)."""
        return max(self.duplicates_by_order, self.duplicates_by_serial)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    # Detection quality (the early warning), reported beside the invariants but not one of them:
    # a drill's exit status says whether an invoice was lost, duplicated or left waiting.
    advisory: bool = False


@dataclass(slots=True)
class Result:
    gateway: str
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    timeouts: int = 0
    server_errors: int = 0
    internal_errors: int = 0  # 500s among the server errors: a bug, never allowed
    issued: int = 0
    rejected: int = 0
    waiting: int = 0
    lost: int = 0
    without_invoice: int = 0
    duplicates: int = 0
    disagree: int = 0
    intake_p50: float = 0.0
    intake_p99: float = 0.0
    issue_p50: float = 0.0
    issue_p99: float = 0.0
    backlog_peak: int = 0
    drain_s: float | None = None
    recovery_s: float | None = None
    crashes: int = 0  # processes killed by the drill
    platform_calls: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    timeline: list[Tick] = field(default_factory=list)
    per_second: list[dict[str, float]] = field(default_factory=list)
    # The early warning (ops/drill_warning.py): times in seconds since the load began
    warnings: list[dict[str, Any]] = field(default_factory=list)
    first_warning_s: float | None = None  # the first warning at or after the fault's start
    breaker_open_s: float | None = None  # a worker's breaker first opened
    warning_lead_s: float | None = None  # breaker_open_s - first_warning_s

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks if not c.advisory)


def _callers(result: Result, samples: list[Sample]) -> None:
    statuses = Counter(s.status for s in samples)
    result.sent = len(samples)
    result.accepted = sum(n for code, n in statuses.items() if 200 <= code < 300)
    result.refused = sum(n for code, n in statuses.items() if 400 <= code < 500)
    result.timeouts = statuses[TIMEOUT]
    result.server_errors = statuses[CONNECT_ERROR] + sum(
        n for code, n in statuses.items() if code >= 500
    )
    result.internal_errors = statuses[500]
    answered = [s.latency_s for s in samples if s.status > 0]
    result.intake_p50 = percentile(answered, 0.5)
    result.intake_p99 = percentile(answered, 0.99)


def _timeline(result: Result, ticks: list[Tick], window: Window) -> None:
    result.timeline = ticks
    if not ticks:
        return
    result.backlog_peak = max(t.backlog for t in ticks)
    calm = [t.backlog for t in ticks if t.t < window.fault_start]
    level = max(calm, default=0) + 5
    after = [t for t in ticks if t.t >= window.fault_end]
    recovered = next((t for t in after if t.backlog <= level), None)
    result.recovery_s = recovered.t - window.fault_end if recovered else None
    drained = next((t for t in ticks if t.t >= window.load_end and t.backlog == 0), None)
    result.drain_s = drained.t - window.load_end if drained else None


def _per_second(result: Result, samples: list[Sample], issue_times: list[float]) -> None:
    """Sent, accepted, failed, issued and intake p99 in each second of the run (charts)."""
    seconds = int(max([s.sent_at for s in samples] + issue_times + [0.0])) + 1
    sent = [0] * seconds
    accepted = [0] * seconds
    issued = [0] * seconds
    failed = [0] * seconds
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    for s in samples:
        i = int(s.sent_at)
        sent[i] += 1
        accepted[i] += s.ok
        failed[i] += not s.ok
        latencies[i].append(s.latency_s if s.status > 0 else float("nan"))
    for t in issue_times:
        if 0 <= t < seconds:
            issued[int(t)] += 1
    backlog = {int(t.t): t.backlog for t in result.timeline}
    result.per_second = [
        {"t": float(i), "sent": sent[i], "accepted": accepted[i], "issued": issued[i],
         "intake_p99_ms": 1000 * percentile([x for x in latencies[i] if x == x], 0.99),
         "failed": float(failed[i]),
         "backlog": float(backlog.get(i, 0))}
        for i in range(seconds)
    ]  # fmt: skip


def assess_kaipiao(
    samples: list[Sample],
    ticks: list[Tick],
    window: Window,
    stored: list[dict[str, Any]],
    seller_index: dict[str, int],
    truth: PlatformTruth,
    *,
    started_at: float,
    callers_may_fail: bool = False,
    checked_region: tuple[int, str] | None = None,
) -> Result:
    """kaipiao's row: callers' view, the store's view, both checked against the platform.

    `started_at` is the load's start as a POSIX time, to place stored times on the timeline;
    `checked_region` is (seller index, region) of the seller that must not slow down."""
    result = Result("kaipiao", platform_calls=truth.calls)
    _callers(result, samples)
    _timeline(result, ticks, window)
    by_order = {(seller_index[r["seller_id"]], r["order_id"]): r for r in stored
                if r["kind"] == "blue" and r["seller_id"] in seller_index}  # fmt: skip
    accepted = {(s.seller, s.order_id) for s in samples if s.ok}
    lost = [key for key in accepted if key not in by_order]
    statuses = Counter(r["status"] for r in by_order.values())
    result.issued = statuses["issued"]
    result.rejected = statuses["rejected"]
    result.waiting = sum(statuses[s] for s in WAITING)
    result.lost = len(lost) + sum(
        n for s, n in statuses.items() if s not in WAITING and s not in {"issued", "rejected",
                                                                         "cancelled"}
    )  # fmt: skip
    disagree = 0
    for key, row in by_order.items():
        numbers = truth.numbers.get(key, [])
        if (row["status"] == "issued" and row["invoice_number"] not in numbers) or (
            row["status"] != "issued" and numbers and row["status"] not in WAITING
        ):
            disagree += 1
    result.disagree = disagree
    sent_orders = {(s.seller, s.order_id) for s in samples}
    result.without_invoice = sum(1 for key in sent_orders if not truth.numbers.get(key))
    result.duplicates = truth.extra_invoices
    issued_rows = [r for r in by_order.values() if r["status"] == "issued" and r["issued_at"]]
    delays = [(r["issued_at"] - r["created_at"]).total_seconds() for r in issued_rows]
    result.issue_p50 = percentile(delays, 0.5)
    result.issue_p99 = percentile(delays, 0.99)
    issue_times = [r["issued_at"].timestamp() - started_at for r in issued_rows]
    _per_second(result, samples, issue_times)

    timeouts = result.timeouts + result.server_errors
    result.checks = [
        Check("no loss", result.lost == 0,
              f"{result.accepted} accepted: {len(by_order)} stored, {len(lost)} missing"),
        Check("no duplicates", result.duplicates == 0,
              f"platform: {truth.duplicates_by_order} extra invoices by order, "
              f"{truth.duplicates_by_serial} by serial"),
        Check("kaipiao agrees with the platform", disagree == 0,
              f"{disagree} of {len(by_order)} invoices differ from the platform's record"),
        Check("callers never time out",
              timeouts == 0 or (callers_may_fail and result.timeouts == 0
                                and result.internal_errors == 0),
              f"{result.timeouts} timeouts, {result.server_errors} errors/5xx "
              f"({result.internal_errors} of them 500)"
              + ("; refusals allowed while the store restarts, timeouts and 500s not"
                 if callers_may_fail else "")),
        Check("drained", result.waiting == 0,
              f"{result.waiting} still waiting when the drill ended"
              + (f" (drained {result.drain_s:.1f} s after the load)"
                 if result.drain_s is not None else "")),
    ]  # fmt: skip
    if checked_region is not None:
        result.checks.append(_region_check(issued_rows, seller_index, started_at, window,
                                           checked_region))  # fmt: skip
    return result


def _region_check(
    rows: list[dict[str, Any]],
    seller_index: dict[str, int],
    started_at: float,
    window: Window,
    region: tuple[int, str],
) -> Check:
    index, name = region
    calm: list[float] = []
    during: list[float] = []
    for r in rows:
        if seller_index.get(r["seller_id"]) != index:
            continue
        at = r["created_at"].timestamp() - started_at
        delay = (r["issued_at"] - r["created_at"]).total_seconds()
        if at < window.fault_start:
            calm.append(delay)
        elif at < window.fault_end:
            during.append(delay)
    before, fault = percentile(calm, 0.99), percentile(during, 0.99)
    bound = 2 * before + 1.0
    return Check(f"region {name} unaffected", bool(during) and fault <= bound,
                 f"intake-to-issue p99 {fault:.2f} s during the fault, {before:.2f} s calm "
                 f"(bound {bound:.2f} s)")  # fmt: skip


def assess_naive(
    samples: list[Sample], ticks: list[Tick], window: Window, truth: PlatformTruth
) -> Result:
    """The naive gateway's row: it stores nothing, so the platform is the whole truth."""
    result = Result("naive", platform_calls=truth.calls)
    _callers(result, samples)
    _timeline(result, ticks, window)
    accepted = {(s.seller, s.order_id) for s in samples if s.ok}
    sent_orders = {(s.seller, s.order_id) for s in samples}
    result.issued = sum(1 for key in sent_orders if truth.numbers.get(key))
    result.lost = sum(1 for key in accepted if not truth.numbers.get(key))
    result.without_invoice = len(sent_orders) - result.issued
    result.duplicates = truth.extra_invoices
    ok = [s for s in samples if s.ok]
    result.issue_p50 = percentile([s.latency_s for s in ok], 0.5)
    result.issue_p99 = percentile([s.latency_s for s in ok], 0.99)
    _per_second(result, samples, [s.sent_at + s.latency_s for s in ok])
    return result
