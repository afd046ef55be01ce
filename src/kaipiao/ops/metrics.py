"""Prometheus metrics of one kaipiao process, in their own registry (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.intake_accepted = Counter(
            "kaipiao_intake_accepted_total",
            "Invoice requests accepted (202) or answered with an existing invoice (200).",
            ["outcome"],
            registry=self.registry,
        )
        self.intake_refused = Counter(
            "kaipiao_intake_refused_total",
            "Requests refused, by problem code (auth, rate limit, network, validation, …).",
            ["code"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "kaipiao_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
