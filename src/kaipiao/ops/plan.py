"""Capacity planner: from a traffic forecast to the resources a deployment needs at its peak.

Pure arithmetic, every step kept as a `Step` (what, the formula with its numbers, the result) so
`kaipiao plan` can print its reasoning. The constants that are not inputs were measured on this
project's benchmarks (bench/README.md) and are named below with their source; change them when a
benchmark moves.

Model:
- arrivals: average = invoices/day ÷ 86,400 s; peak = average × peak factor;
- issuance runs at min(peak, quota): above the quota the backlog grows and drains after the peak;
- platform calls in flight (Little's law, L = λ·W): λ = calls/s, W = platform latency; the mean
  gives the steady need, the p99 the need when the whole platform slows to its p99;
- CPU: measured seconds per invoice of a worker and per request of the API; one process is one core
  (Python), kept below `CORE_BUDGET` busy so a surge or a retry storm has room;
- writes: an invoice is written by three transactions (accepted, claimed, settled), each with its
  ledger event; without group commit each is one fsync; bytes go to the WAL and again to the table;
- storage: the invoice row with its payload, three ledger events, index overhead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SECONDS_PER_DAY = 86_400
WORKER_CPU_S_PER_INVOICE = 0.0025  # bench/issuance.py: 2.15–2.50 s per 1,000 issued
API_CPU_S_PER_REQUEST = 1 / 713  # bench/intake.py: 713–802 req/s on one core (PostgreSQL)
CORE_BUDGET = 0.6  # a process kept at most 60% busy at the peak
POOL_PER_PROCESS = 40  # store.database.Database: pool_size 20 + max_overflow 20
PG_MAX_CONNECTIONS = 100  # PostgreSQL's default max_connections
DEFAULT_MAX_IN_FLIGHT = 500  # Settings.max_in_flight
TRANSACTIONS_PER_INVOICE = 3  # accepted, claimed, settled
ROW_OVERHEAD_BYTES = 600  # invoice columns besides the request body (ids, times, amounts, status)
EVENT_BYTES = 350  # one ledger event: ids, type, small payload, two SHA3-256 hashes
EVENTS_PER_INVOICE = 3
INDEX_FACTOR = 1.5  # primary key, (seller, order), queue and status indexes
PAGE_BYTES = 4096
WORKER_BASE_MIB = 135.0  # bench/backlog_memory.py: 133.8–135.1 MiB steady with a 1M backlog
API_BASE_MIB = 110.0  # `kaipiao serve --no-workers` RSS after warm-up
PER_CALL_KIB = 40.0  # one platform call in flight: request, response, task, lease record


@dataclass(frozen=True, slots=True)
class PlanInput:
    """A forecast. Latencies in seconds; quota is platform calls/s for all sellers together."""

    invoices_per_day: int
    peak_factor: float
    latency_mean_s: float
    latency_p99_s: float
    quota_per_s: float
    payload_bytes: int = 2048
    retention_years: int = 10
    replicas: int = 2
    failure_rate: float = 0.005
    disk_iops: int = 3000
    concurrent_users: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.invoices_per_day <= 0:
            problems.append("invoices per day must be positive")
        if self.peak_factor < 1:
            problems.append("the peak factor must be at least 1")
        if self.latency_mean_s <= 0 or self.latency_p99_s < self.latency_mean_s:
            problems.append("latency: 0 < mean ≤ p99")
        if self.quota_per_s <= 0:
            problems.append("the platform quota must be positive")
        if self.payload_bytes <= 0 or self.retention_years < 0 or self.replicas < 1:
            problems.append("payload > 0, retention ≥ 0 and replicas ≥ 1")
        if not 0 <= self.failure_rate < 1:
            problems.append("the failure rate is a fraction in [0, 1)")
        if self.disk_iops <= 0:
            problems.append("disk IOPS must be positive")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    formula: str
    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class Headroom:
    resource: str
    capacity: float
    demand: float

    @property
    def ratio(self) -> float:
        return self.capacity / self.demand if self.demand else math.inf


@dataclass(frozen=True, slots=True)
class RuleOfThumb:
    rule: str
    formula: str
    value: float
    kaipiao: str
    why: str


@dataclass(slots=True)
class Plan:
    steps: list[Step] = field(default_factory=list)
    headroom: list[Headroom] = field(default_factory=list)
    rules: list[RuleOfThumb] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, formula: str, value: float, unit: str) -> float:
        self.steps.append(Step(name, formula, value, unit))
        return value

    def value(self, name: str) -> float:
        return next(s.value for s in self.steps if s.name == name)

    @property
    def breaks_first(self) -> Headroom:
        return min(self.headroom, key=lambda h: h.ratio)


def _n(value: float) -> str:
    """A number for a formula: integers plain, others with up to 3 significant decimals."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"


def plan(forecast: PlanInput) -> Plan:
    """Work out a deployment for `forecast`; each figure is a `Step` with its formula."""
    f = forecast
    p = Plan()
    avg = p.add(
        "average arrivals",
        f"{_n(f.invoices_per_day)} / {SECONDS_PER_DAY:,} s",
        f.invoices_per_day / SECONDS_PER_DAY,
        "invoices/s",
    )
    peak = p.add(
        "peak arrivals", f"{_n(avg)} × {_n(f.peak_factor)}", avg * f.peak_factor, "invoices/s"
    )
    issue = p.add(
        "issuance at the peak",
        f"min(peak {_n(peak)}, quota {_n(f.quota_per_s)})",
        min(peak, f.quota_per_s),
        "invoices/s",
    )
    growth = p.add(
        "backlog growth at the peak",
        f"max(0, {_n(peak)} − {_n(f.quota_per_s)})",
        max(0.0, peak - f.quota_per_s),
        "invoices/s",
    )
    calls_per = 1 / (1 - f.failure_rate)
    calls = p.add(
        "platform calls at the peak",
        f"{_n(issue)} × 1 / (1 − {_n(f.failure_rate)}) (retries of failed calls)",
        issue * calls_per,
        "calls/s",
    )
    in_flight = p.add(
        "calls in flight, mean latency",
        f"Little: {_n(calls)} × {_n(f.latency_mean_s)} s",
        calls * f.latency_mean_s,
        "calls",
    )
    in_flight_p99 = p.add(
        "calls in flight, platform at its p99",
        f"Little: {_n(calls)} × {_n(f.latency_p99_s)} s",
        calls * f.latency_p99_s,
        "calls",
    )
    worker_cores = p.add(
        "worker CPU at the peak",
        f"{_n(issue)} × {WORKER_CPU_S_PER_INVOICE} s (bench/issuance.py)",
        issue * WORKER_CPU_S_PER_INVOICE,
        "cores",
    )
    workers = p.add(
        "worker processes",
        f"max(replicas {f.replicas}, ⌈{_n(worker_cores)} / {CORE_BUDGET}⌉)",
        max(f.replicas, math.ceil(worker_cores / CORE_BUDGET)),
        "processes",
    )
    per_worker = p.add(
        "in-flight limit per worker",
        f"⌈{_n(in_flight_p99)} / {_n(workers)}⌉",
        math.ceil(in_flight_p99 / workers),
        "calls",
    )
    api_cores = p.add(
        "API CPU at the peak",
        f"{_n(peak)} × {API_CPU_S_PER_REQUEST:.5f} s (bench/intake.py)",
        peak * API_CPU_S_PER_REQUEST,
        "cores",
    )
    apis = p.add(
        "API processes",
        f"max(replicas {f.replicas}, ⌈{_n(api_cores)} / {CORE_BUDGET}⌉)",
        max(f.replicas, math.ceil(api_cores / CORE_BUDGET)),
        "processes",
    )
    connections = p.add(
        "database connections",
        f"({_n(apis)} + {_n(workers)}) processes × pool {POOL_PER_PROCESS}",
        (apis + workers) * POOL_PER_PROCESS,
        "connections",
    )
    fsyncs = p.add(
        "commits at the peak, no grouping",
        f"{_n(peak)} × {TRANSACTIONS_PER_INVOICE} transactions",
        peak * TRANSACTIONS_PER_INVOICE,
        "fsync/s",
    )
    stored = f.payload_bytes + ROW_OVERHEAD_BYTES + EVENTS_PER_INVOICE * EVENT_BYTES
    written = p.add(
        "bytes written per invoice",
        f"2 (WAL, then table) × ({_n(f.payload_bytes)} payload"
        f" + {ROW_OVERHEAD_BYTES} row"
        f" + {EVENTS_PER_INVOICE} × {EVENT_BYTES} events)",
        2 * stored,
        "bytes",
    )
    iops = p.add(
        "write IOPS at the peak",
        f"{_n(fsyncs)} fsync/s + {_n(peak)} × {_n(written)} B / {PAGE_BYTES} B pages",
        fsyncs + peak * written / PAGE_BYTES,
        "IOPS",
    )
    per_year = p.add(
        "storage per year",
        f"{_n(f.invoices_per_day)} × 365 × {_n(stored)} B × {INDEX_FACTOR} indexes",
        f.invoices_per_day * 365 * stored * INDEX_FACTOR / 1e9,
        "GB",
    )
    p.add(
        "storage for the retention period",
        f"{_n(per_year)} GB × {f.retention_years} years",
        per_year * f.retention_years,
        "GB",
    )
    worker_mib = p.add(
        "memory per worker",
        f"{WORKER_BASE_MIB} MiB + {_n(per_worker)} calls × {PER_CALL_KIB} KiB",
        WORKER_BASE_MIB + per_worker * PER_CALL_KIB / 1024,
        "MiB",
    )
    p.add(
        "memory in all",
        f"{_n(workers)} × {_n(worker_mib)} + {_n(apis)} × {API_BASE_MIB} MiB",
        workers * worker_mib + apis * API_BASE_MIB,
        "MiB",
    )

    p.headroom = [
        Headroom("platform quota (calls/s)", f.quota_per_s, peak * calls_per),
        Headroom("worker CPU (cores)", workers * CORE_BUDGET, worker_cores),
        Headroom("API CPU (cores)", apis * CORE_BUDGET, api_cores),
        Headroom("disk (write IOPS)", f.disk_iops, iops),
        Headroom("PostgreSQL max_connections", PG_MAX_CONNECTIONS, connections),
        Headroom("in-flight limit per worker", DEFAULT_MAX_IN_FLIGHT, per_worker),
    ]
    if growth > 0:
        drain = f.quota_per_s - avg
        p.notes.append(
            f"the peak outruns the quota: the backlog grows {_n(growth)}/s while it lasts and "
            f"drains at {_n(drain)}/s (quota − average arrivals) afterwards; intake is unaffected"
        )
    if per_worker > DEFAULT_MAX_IN_FLIGHT:
        p.notes.append(
            f"set --max-in-flight ≥ {_n(per_worker)} (default {DEFAULT_MAX_IN_FLIGHT}) or add "
            "workers, or a slow platform caps issuance below the quota"
        )

    if connections > PG_MAX_CONNECTIONS:
        p.notes.append(
            f"{_n(connections)} connections at most exceed PostgreSQL's default max_connections "
            f"{PG_MAX_CONNECTIONS}: raise it or pool through PgBouncer in transaction mode"
        )

    users = (
        f.concurrent_users if f.concurrent_users is not None else math.ceil(peak * f.latency_mean_s)
    )
    p.rules = [
        RuleOfThumb(
            "thread pool = peak QPS / 100 + 100",
            f"{_n(peak)} / 100 + 100",
            peak / 100 + 100,
            f"{_n(in_flight)} calls in flight at the mean latency, {_n(in_flight_p99)} at the p99",
            "the rule ignores latency; by Little's law concurrency is rate × latency, so it "
            "undersizes a slow platform and oversizes a fast one. kaipiao holds no thread per "
            "request: calls in flight are tasks, bounded by the adaptive limit",
        ),
        RuleOfThumb(
            "connection pool = concurrent users × 3 + 500",
            f"{users} users × 3 + 500",
            users * 3 + 500,
            f"{_n(connections)} connections for {_n(apis + workers)} processes",
            "the rule sizes for a synchronous gateway that holds a connection while the platform "
            "answers; kaipiao commits and releases before any platform call, so connections "
            "scale with processes, not with callers or latency"
            + (
                ""
                if f.concurrent_users is not None
                else f" (users taken as peak × mean latency = {users})"
            ),
        ),
        RuleOfThumb(
            "IOPS = QPS × transaction size / 512",
            f"{_n(peak)} × {_n(f.payload_bytes)} / 512",
            peak * f.payload_bytes / 512,
            f"{_n(iops)} IOPS (no grouping; group commit lowers the fsyncs)",
            "the rule counts one 512-byte sector write per 512 bytes and one transaction per "
            "request; kaipiao writes each invoice three times (accepted, claimed, settled) and "
            "each commit costs an fsync, while a 4 KiB page carries many small writes",
        ),
    ]
    return p


def render(forecast: PlanInput, result: Plan) -> str:
    """The plan as text: the reasoning, the headroom table, what breaks first, the rules."""
    lines = ["Reasoning"]
    width = max(len(s.name) for s in result.steps)
    for s in result.steps:
        lines.append(f"  {s.name:<{width}}  {_n(s.value):>12} {s.unit:<11} = {s.formula}")
    lines += ["", "Headroom at the peak (capacity ÷ demand; below 1 it breaks)"]
    for h in sorted(result.headroom, key=lambda h: h.ratio):
        lines.append(
            f"  {h.resource:<30} {_n(h.capacity):>10} / {_n(h.demand):>10} = {h.ratio:6.2f}"
        )
    first = result.breaks_first
    verdict = "breaks" if first.ratio < 1 else "is the first to run out"
    lines += ["", f"What breaks first: {first.resource} {verdict} ({first.ratio:.2f}× headroom)"]
    lines += [f"  note: {note}" for note in result.notes]
    lines += ["", "The field report's rules of thumb, beside kaipiao's own numbers"]
    for r in result.rules:
        lines.append(f"  {r.rule}: {r.formula} = {_n(r.value)}")
        lines.append(f"    kaipiao: {r.kaipiao}")
        lines.append(f"    why they differ: {r.why}")
    return "\n".join(lines)
