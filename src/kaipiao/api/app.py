"""The application factory: the one place where the API's parts are wired together."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from kaipiao import __version__
from kaipiao.api import console, problems
from kaipiao.api.admin_routes import router as admin_router
from kaipiao.api.auth import KeyCache
from kaipiao.api.guards import ASGIApp, BodyGuard, Observe, Receive, Scope, Send
from kaipiao.api.intake_path import IntakePath
from kaipiao.api.routes import router
from kaipiao.bootstrap import file_store_for
from kaipiao.clock import utcnow
from kaipiao.config import Settings
from kaipiao.observability.metrics import Metrics
from kaipiao.platform.outbound import OutboundPolicy, parse_networks
from kaipiao.services.tree_cache import TreeCache
from kaipiao.store.database import Database
from kaipiao.store.rate_limit import LocalRateLimiter, RateLimiter, rate_limiter_for

log = logging.getLogger("kaipiao.api")
DESCRIPTION = """kaipiao accepts invoice (fapiao) requests, stores each durably before answering,
and issues each exactly once on the tax platform. Errors are RFC 9457 problem documents with a
stable `code`. Authenticate with `Authorization: Bearer <api key>`."""


class KaipiaoApp(FastAPI):
    """FastAPI, except that `POST /v1/invoices` goes straight to kaipiao's own layers (`Observe`,
    `BodyGuard`, `IntakePath`) instead of through FastAPI's and Starlette's middleware stack,
    whose error, telemetry and body-limit layers cost more per request than storing the invoice
    (measured: bench/README.md, intake). Every other request takes FastAPI's stack with the
    same two guards inside it."""

    intake: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if IntakePath.handles(scope):
            await self.intake(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    database: Database,
    *,
    clock: Callable[[], object] = utcnow,
    rate_limiter: RateLimiter | None = None,
) -> KaipiaoApp:
    """Build the API around an existing database handle (nothing connects here). The per-seller
    rate limiter is the one the settings name (`rate_limiter_for`) unless one is given."""
    app = KaipiaoApp(
        title="kaipiao",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    metrics = Metrics()
    metrics.watch_transactions(database.stats)
    app.state.snapshot = None  # kept fresh by `kaipiao serve` (runtime.poll_status)
    app.state.draining = False  # set on SIGTERM by `kaipiao serve`: /readyz answers 503
    metrics.watch_snapshot(lambda: app.state.snapshot)
    app.state.settings = settings
    app.state.intake_series = None  # a warn.telemetry.RateSeries when `serve` runs the warning
    app.state.database = database
    app.state.file_store = file_store_for(settings)
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.key_cache = KeyCache()
    app.state.rate_limiter = rate_limiter or rate_limiter_for(
        settings.rate_limit_url, settings.intake_rate_per_s, settings.intake_burst,
        settings.rate_limit_lease,
    )  # fmt: skip
    app.state.auth_failures = LocalRateLimiter(
        settings.auth_failure_rate_per_s, settings.auth_failure_burst
    )
    app.state.outbound = OutboundPolicy(parse_networks(settings.outbound_allow_networks))
    app.state.tree_cache = TreeCache()
    app.state.idempotency_ttl = timedelta(days=settings.idempotency_ttl_days)

    def on_problem(problem: problems.Problem) -> None:
        if problem.status < 500:
            metrics.intake_refused.labels(problem.code).inc()

    problems.install(app, on_problem)
    app.include_router(router)
    console.install(app)
    app.include_router(admin_router)

    def refused(code: str) -> None:
        metrics.intake_refused.labels(code).inc()

    def on_done(route: str, method: str, status: int, seconds: float) -> None:
        metrics.request(route, method, status, seconds)

    def on_crash(scope: MutableMapping[str, Any], exc: BaseException) -> bytes:
        log.error("unexpected error on %s %s", scope["method"], scope["path"], exc_info=exc)
        problem = problems.Problem("internal_error", "unexpected error; it has been logged")
        return bytes(problems.problem_response(problem).body)

    # The intake path answers every request it is given; FastAPI behind it is never reached.
    intake = IntakePath(super(KaipiaoApp, app).__call__, state=app.state, on_problem=on_problem)
    limits = {"max_bytes": settings.max_body_bytes, "on_refuse": refused,
              "body_timeout_s": settings.body_timeout_s}  # fmt: skip
    guarded = BodyGuard(intake, **limits)  # type: ignore[arg-type]
    app.intake = Observe(guarded, on_done=on_done, on_crash=on_crash)
    app.add_middleware(BodyGuard, **limits)  # type: ignore[arg-type]
    app.add_middleware(Observe, on_done=on_done, on_crash=on_crash)
    return app
