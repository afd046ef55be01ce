"""Prometheus metrics of one kaipiao process, in their own registry (one per app or worker).

Each process exports what it does itself (HTTP, intake, platform calls, retries, transactions);
the state of the whole deployment (queue depth and age, every worker's breakers and limits, the
incident level) comes from the store through a `Snapshot` refreshed every few seconds, so any
`serve` instance shows it and several workers never double-count it (alert on `max`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from kaipiao.services.status import Snapshot
    from kaipiao.store.database import TransactionStats

BREAKER_STATES = ("closed", "half_open", "open")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.intake_accepted = Counter(
            "kaipiao_intake_accepted_total",
            "Invoice requests accepted (202) or answered with an existing invoice (200).",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.intake_refused = Counter(
            "kaipiao_intake_refused_total",
            "Requests refused, by problem code (auth, rate limit, network, validation, …).",
            ["code"], registry=r,
        )  # fmt: skip
        self.auth_failures = Counter(
            "kaipiao_auth_failures_total",
            "Failed authentications: `refused` (unknown, expired or revoked key, looked up) and "
            "`limited` (429 for the source address, not looked up).",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "kaipiao_http_request_duration_seconds",
            "HTTP request latency by route template, method and status (its _count counts "
            "requests).",
            ["route", "method", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )  # fmt: skip
        self.platform_calls = Counter(
            "kaipiao_platform_calls_total",
            "Tax platform calls by endpoint (issue, issue_red, query), region and outcome.",
            ["endpoint", "region", "outcome"], registry=r,
        )  # fmt: skip
        self.platform_duration = Histogram(
            "kaipiao_platform_call_duration_seconds",
            "Tax platform call latency by endpoint and region.",
            ["endpoint", "region"],
            buckets=(0.05, 0.1, 0.25, 0.5, 0.8, 1, 2, 5, 10, 15, 30), registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "kaipiao_retries_total",
            "Invoices put back to be tried later, by reason (an outcome, breaker_open, budget).",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in ("breaker_open", "budget", "unavailable", "ambiguous", "throttled"):
            self.retries.labels(reason)  # present at 0 from the start, so rates are defined
        self.intake_to_issue = Histogram(
            "kaipiao_intake_to_issue_seconds",
            "Time from acceptance to issue (the SLO counts the le=300 bucket).",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600), registry=r,
        )  # fmt: skip

        self._calls: dict[tuple[str, str, str], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}
        self._requests: dict[tuple[str, str, int], Histogram] = {}
        self._accepted: dict[str, Counter] = {}

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- the API's, per request (children cached like the engine's below) ----------------------
    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        timer = self._requests.get((route, method, status))
        if timer is None:
            timer = self._requests[route, method, status] = self.http_duration.labels(
                route, method, str(status)
            )
        timer.observe(seconds)

    def accepted(self, outcome: str) -> None:
        counter = self._accepted.get(outcome)
        if counter is None:
            counter = self._accepted[outcome] = self.intake_accepted.labels(outcome)
        counter.inc()

    # -- the engine's observer ----------------------------------------------------------------
    def call(self, endpoint: str, region: str, outcome: str, seconds: float) -> None:
        # Label children are looked up once per label set (labels() takes a lock each time).
        counter = self._calls.get((endpoint, region, outcome))
        if counter is None:
            counter = self._calls[endpoint, region, outcome] = self.platform_calls.labels(
                endpoint, region, outcome
            )
        counter.inc()
        timer = self._timers.get((endpoint, region))
        if timer is None:
            timer = self._timers[endpoint, region] = self.platform_duration.labels(endpoint, region)
        timer.observe(seconds)

    def retry(self, reason: str) -> None:
        self.retries.labels(reason).inc()

    def issued(self, waited_s: float) -> None:
        self.intake_to_issue.observe(max(0.0, waited_s))

    # -- state read at scrape time -------------------------------------------------------------
    def watch_transactions(self, stats: TransactionStats) -> None:
        self.registry.register(_Transactions(stats))

    def watch_snapshot(self, latest: Callable[[], Snapshot | None]) -> None:
        self.registry.register(_SnapshotCollector(latest))


class _Transactions(Collector):
    def __init__(self, stats: TransactionStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "kaipiao_db_commits", "Units of work committed by this process.",
            value=self.stats.commits,
        )  # fmt: skip
        yield CounterMetricFamily(
            "kaipiao_db_rollbacks", "Units of work rolled back by this process.",
            value=self.stats.rollbacks,
        )  # fmt: skip


class _SnapshotCollector(Collector):
    def __init__(self, latest: Callable[[], Snapshot | None]) -> None:
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        snap = self.latest()
        if snap is None:
            return
        invoices = GaugeMetricFamily(
            "kaipiao_invoices", "Invoices by status (the queue is queued+issuing+reversing).",
            labels=["status"],
        )  # fmt: skip
        for status, count in sorted(snap.counts.items()):
            invoices.add_metric([status], count)
        if "attention" not in snap.counts:
            invoices.add_metric(["attention"], 0)
        yield invoices
        gauges = (
            ("kaipiao_oldest_queued_age_seconds", "Age of the oldest invoice waiting to be issued.",
             snap.oldest_waiting_s),
            ("kaipiao_active_sellers", "Sellers active in the last 24 h.", snap.active_sellers),
            ("kaipiao_affected_sellers", "Active sellers with invoices stuck, refused or late.",
             snap.affected_sellers),
            ("kaipiao_incident_level", "0 none, 1 <1% of sellers affected, 2 1-5%, 3 >5%.",
             snap.level),
            ("kaipiao_seller_quota_per_second", "Platform quota configured across sellers.",
             snap.quota_per_s),
            ("kaipiao_ledger_events", "Events in the ledger's chain.", snap.ledger_events),
            ("kaipiao_workers", "Worker processes seen in the last 30 s.", len(snap.workers)),
            ("kaipiao_webhook_backlog", "Webhook deliveries waiting (pending).",
             snap.webhook_backlog),
            ("kaipiao_reconcile_deviation_ratio",
             "The last reconciliation's contradictions / invoices checked (0 if never run).",
             snap.deviation or 0.0),
        )  # fmt: skip
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        opened = GaugeMetricFamily(
            "kaipiao_breaker_open",
            "1 while a worker's breaker for a region is not closed (open, or probing half-open: "
            "a long outage alternates the two, and an alert must not restart its timer).",
            labels=["region", "worker"],
        )  # fmt: skip
        state = GaugeMetricFamily(
            "kaipiao_breaker_state", "A worker's breaker state per region (1 for the current one).",
            labels=["region", "worker", "state"],
        )  # fmt: skip
        limit = GaugeMetricFamily(
            "kaipiao_concurrency_limit", "A worker's adaptive concurrency limit per region.",
            labels=["region", "worker"],
        )  # fmt: skip
        in_flight = GaugeMetricFamily(
            "kaipiao_platform_in_flight", "Platform calls a worker has in flight.",
            labels=["worker"],
        )  # fmt: skip
        for owner, _, report in snap.workers:
            for region, current in report.get("breakers", {}).items():
                opened.add_metric([region, owner], 0 if current == "closed" else 1)
                for candidate in BREAKER_STATES:
                    state.add_metric([region, owner, candidate], int(candidate == current))
            for region, value in report.get("limits", {}).items():
                limit.add_metric([region, owner], value)
            in_flight.add_metric([owner], report.get("in_flight", 0))
        yield from (opened, state, limit, in_flight)
        warning = GaugeMetricFamily(
            "kaipiao_early_warning",
            "1 while a live process holds an early warning on a signal (latency_p95, "
            "failure_share, throttled_share per province; intake per seller group; backlog).",
            labels=["signal"],
        )  # fmt: skip
        for signal in sorted({w["signal"] for w in snap.warnings}):
            warning.add_metric([signal], 1)
        yield warning
