"""Running processes: `kaipiao serve` (API, workers, sandbox, background jobs), `kaipiao worker`
and one reconciliation pass. The parts come from `kaipiao.bootstrap`; this module owns the event
loop, signals, the start-up banner, logging and the collector's tuning. (`kaipiao sandbox` has its
own runner, `kaipiao.sandbox.run`, so that a sandbox starts without the gateway's modules.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from typing import Any

import uvicorn
from prometheus_client import start_http_server

from kaipiao.api.app import create_app
from kaipiao.api.connections import GuardedHttpToolsProtocol
from kaipiao.bootstrap import (
    checkpoint_job,
    database_for,
    early_warning_for,
    file_fetcher,
    loose_files,
    mail_deliverer,
    platform_for,
    signer_for,
    webhook_sender,
    worker_config,
)
from kaipiao.clock import utcnow
from kaipiao.config import Settings
from kaipiao.engine.early_warning import EarlyWarning, WarningObserver
from kaipiao.engine.notify import Notifier
from kaipiao.engine.worker import HEARTBEAT_S, Worker
from kaipiao.observability import logs
from kaipiao.observability.metrics import Metrics
from kaipiao.platform.protocol import TaxPlatform
from kaipiao.sandbox.faults import PROFILES
from kaipiao.sandbox.run import install_event_loop
from kaipiao.sandbox.server import SandboxServer
from kaipiao.sandbox.state import SandboxState
from kaipiao.services import ledger, reconcile, recovery, status
from kaipiao.services.demo import ensure_demo_seller
from kaipiao.services.reconcile import ReconcileJob
from kaipiao.store import overview
from kaipiao.store.database import Database
from kaipiao.store.migrate import is_current, upgrade
from kaipiao.warn.telemetry import CallSeries, RateSeries

log = logging.getLogger("kaipiao")

WORKER_LINGER_S = 0.01
"""A worker's SQLite writer waits this long to gather results into one commit (measured: see
bench/README.md, issuance)."""


def configure_logging(level: str) -> None:
    logs.configure(level, sys.stderr)


def run_process(
    process: Callable[[Settings], Coroutine[Any, Any, None]], settings: Settings
) -> None:
    """Run `serve` or `run_worker` to its end in this process, with logging configured, the
    fast event loop installed, and everything it creates private to its user (umask 077)."""
    os.umask(0o077)
    configure_logging(settings.log_level)
    warn_loose_files(settings)
    install_event_loop()
    asyncio.run(process(settings))


def warn_loose_files(settings: Settings) -> None:
    """Warn at start about data files others may read (see `bootstrap.loose_files`)."""
    loose = loose_files(settings)
    for line in loose[:20]:
        log.warning("readable by others (want 0600 files, 0700 directories): %s", line)
    if loose:
        print(f"warning: {len(loose)} file(s) in the data directory are readable by others "
              f"(e.g. {loose[0]}); run: chmod -R go-rwx {settings.data_dir}",
              file=sys.stderr, flush=True)  # fmt: skip


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: the process then finishes its work and stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_worker(settings: Settings) -> None:
    """A worker process: issue due invoices until SIGINT/SIGTERM, then stop gracefully."""
    if settings.platform_url is None:
        raise SystemExit("kaipiao worker needs --platform-url (or KAIPIAO_PLATFORM_URL)")
    db = database_for(settings, linger_s=WORKER_LINGER_S)
    await _ready_schema(db, settings)
    platform = platform_for(settings, settings.platform_url, db)
    stop = _stop_on_signals()
    metrics = Metrics()
    metrics.watch_transactions(db.stats)
    worker, early = worker_with_warning(settings, db, platform, metrics)
    print(f"kaipiao worker {worker.owner} issuing on {settings.platform_url}", flush=True)
    if settings.metrics_port is not None:
        server, _ = start_http_server(settings.metrics_port, settings.host, metrics.registry)
        port = server.server_address[1]
        print(f"  metrics:  http://{settings.host}:{port}/metrics", flush=True)
    senders = asyncio.create_task(webhook_sender(settings, db).run(stop))
    files = (
        [asyncio.create_task(file_fetcher(settings, db, platform).run(stop)),
         asyncio.create_task(mail_deliverer(settings, db).run(stop))]
        if settings.files_fetch else []
    )  # fmt: skip
    warner = asyncio.create_task(early.run(stop)) if early else None
    try:
        await worker.run(stop)
    finally:
        stop.set()
        await senders
        for task in files:
            await task
        if warner is not None:
            await warner
        await platform.aclose()
        await db.dispose()


def worker_with_warning(
    settings: Settings, db: Database, platform: TaxPlatform, metrics: Metrics
) -> tuple[Worker, EarlyWarning | None]:
    """A worker whose platform calls and the backlog feed its early warning (unless
    `--no-warn`); the warnings travel in the worker's heartbeat."""
    if not settings.warn:
        return Worker(db, platform, worker_config(settings), observer=metrics), None
    calls = CallSeries()
    holder: list[Worker] = []

    def opened() -> dict[str, int]:
        return {region: b.opened_total for region, b in holder[0].dispatch.breakers.items()}

    early = early_warning_for(
        settings, "worker", calls=calls, backlog=lambda: db.read(overview.backlog),
        breakers_opened=opened,
    )  # fmt: skip
    worker = Worker(db, platform, worker_config(settings), observer=WarningObserver(metrics, calls),
                    extra_state=early.report)  # fmt: skip
    early.notifier = Notifier(settings.warn_notify_url, worker.owner,
                              settings.warn_notify_timeout_s)  # fmt: skip
    holder.append(worker)
    return worker, early


async def api_warning(app: Any, settings: Settings, db: Database, stop: asyncio.Event) -> None:
    """The API's early warning (intake per seller group), kept in a heartbeat row of its own
    (`role: api`) so that `kaipiao status` and /metrics see it beside the workers'."""
    rates = RateSeries("intake")
    app.state.intake_series = rates
    owner = f"api:{socket.gethostname()}:{os.getpid()}"
    early = early_warning_for(settings, owner, rates=rates)
    runner = asyncio.create_task(early.run(stop))
    try:
        while not stop.is_set():
            state = {"role": "api", **early.report()}
            try:
                await db.write(functools.partial(overview.beat, owner=owner, now=utcnow(),
                                                 state=state))  # fmt: skip
            except Exception:
                log.exception("the API's heartbeat failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_S)
    finally:
        await runner
        with contextlib.suppress(Exception):
            await db.write(lambda conn: overview.forget_worker(conn, owner))


async def reconcile_once(
    settings: Settings, db: Database, platform_url: str, *, since: datetime
) -> reconcile.Report:
    """One reconciliation pass against the platform at `platform_url` (and the sellers' own
    provider accounts), as `serve` runs periodically."""
    platform = platform_for(settings, platform_url, db)
    try:
        return await reconcile.reconcile(db, platform, since=since, clock=utcnow)
    finally:
        await platform.aclose()


async def recover_once(
    settings: Settings, db: Database, platform_url: str, *, since: datetime
) -> recovery.RecoverReport:
    """Reconciliation in recover mode (after a restore): what the platform issued since
    `since` comes back as issued (`services/recovery.py`)."""
    platform = platform_for(settings, platform_url, db)
    try:
        return await recovery.recover(db, platform, since=since, clock=utcnow)
    finally:
        await platform.aclose()


async def poll_status(app: Any, db: Database, stop: asyncio.Event, every_s: float = 5.0) -> None:
    """Keep `app.state.snapshot` (the deployment-wide gauges on /metrics) fresh."""
    while not stop.is_set():
        try:
            app.state.snapshot = await status.snapshot(db, utcnow())
        except Exception:
            log.exception("reading the status snapshot failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def _ready_schema(db: Database, settings: Settings, every_s: float = 1.0) -> None:
    """Migrate (`migrate_on_start`), or wait until the migration Job has: a replica of a newer
    release can start before the Job finished, and must not touch the old schema."""
    if settings.migrate_on_start:
        await upgrade(db)
        return
    while not await is_current(db):
        log.info("waiting for the database migrations (`kaipiao migrate`)")
        await asyncio.sleep(every_s)


def _tune_gc() -> None:
    """Move everything alive after start-up out of the collector's way, and collect the young
    generation less often: a request allocates hundreds of short-lived objects, and the
    collections they set off were measurable time under load (bench/README.md, intake)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers: `serve` drains first (`_drain_on`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _drain_on_signals(app: Any, server: uvicorn.Server, drain_s: float) -> None:
    """On SIGTERM or SIGINT: answer /readyz 503 at once and keep serving for `drain_s` seconds,
    so that load balancers and the Service's endpoints stop sending here; then uvicorn stops
    listening and finishes the requests in flight, and `serve` stops its jobs. A second signal
    stops without waiting."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if app.state.draining:
            server.force_exit = server.should_exit = True
            return
        app.state.draining = True
        log.info("shutting down: not ready, draining for %.1f s", drain_s)
        loop.call_later(drain_s, setattr, server, "should_exit", True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


async def serve(settings: Settings) -> None:
    """Run the API (and, without --platform-url, a sandbox platform) until SIGINT/SIGTERM."""
    db = database_for(settings)
    await _ready_schema(db, settings)
    signer = signer_for(settings)
    try:
        await ledger.check_signer(db, signer)
    except BaseException:
        await db.dispose()
        raise
    sandbox: SandboxServer | None = None
    platform_url = settings.platform_url
    if platform_url is None:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = SandboxState(
            faults=PROFILES["normal"], journal_path=settings.data_dir / "sandbox.jsonl"
        )
        sandbox = SandboxServer(state, "127.0.0.1", 0)
        await sandbox.start()
        platform_url = sandbox.url
    # The demo seller exists for the quick start only: with the in-process sandbox, never
    # against a real platform.
    with_demo = settings.demo_seller and sandbox is not None
    demo = await ensure_demo_seller(db, settings.data_dir) if with_demo else None
    app = create_app(settings, db)
    proxies = list(settings.networks("trusted_proxies"))
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        access_log=False, lifespan="off", http=GuardedHttpToolsProtocol.with_timeout(
            settings.header_timeout_s),
        # X-Forwarded-For is believed only from the configured proxies (uvicorn's default
        # trusts 127.0.0.1, which let a local proxy defeat a seller's allowed networks).
        proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
    )  # fmt: skip
    # The server's end is the process's stop signal; SIGTERM drains it first.
    server = _Server(config)
    _drain_on_signals(app, server, settings.drain_s)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no startup event
        await asyncio.sleep(0.05)
    if server.started:
        _tune_gc()
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://{settings.host}:{port}"
        print(f"kaipiao listening on {base} (pid {os.getpid()})", flush=True)
        print(f"  store:    {redact(settings.resolved_database_url())}", flush=True)
        where = "in-process sandbox" if sandbox else "configured platform"
        print(f"  platform: {platform_url} ({where})", flush=True)
        if demo is not None:
            # The key itself is printed only by the explicit command (`seller demo-key`).
            key = "$(kaipiao seller demo-key" + _data_dir_flag(settings) + ")"
            print(f"  demo seller {demo.seller_id}; try:\n    {curl_example(base, key)}",
                  flush=True)  # fmt: skip
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    background: list[asyncio.Task[None]] = []
    if settings.warn:
        background.append(asyncio.create_task(api_warning(app, settings, db, stop)))
    platform = platform_for(settings, platform_url, db)
    if settings.workers:
        worker, early = worker_with_warning(settings, db, platform, app.state.metrics)
        worker_task = asyncio.create_task(worker.run(stop))
        if early is not None:
            background.append(asyncio.create_task(early.run(stop)))
        print(f"  workers:  {worker.owner}", flush=True)
    checkpoints = asyncio.create_task(checkpoint_job(settings, db, signer).run(stop))
    senders = asyncio.create_task(webhook_sender(settings, db).run(stop))
    if settings.workers and settings.files_fetch:
        background.append(asyncio.create_task(file_fetcher(settings, db, platform).run(stop)))
        background.append(asyncio.create_task(mail_deliverer(settings, db).run(stop)))
    poller = asyncio.create_task(poll_status(app, db, stop))
    reconciler = asyncio.create_task(
        ReconcileJob(db, platform, utcnow, every_s=settings.reconcile_every_s).run(stop)
    )
    try:
        await task
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task
        await checkpoints
        await poller
        await senders
        await reconciler
        for job in background:
            await job
        await platform.aclose()
        await app.state.rate_limiter.aclose()
        if sandbox is not None:
            await sandbox.stop()
        await db.dispose()


def _data_dir_flag(settings: Settings) -> str:
    default = Settings.model_fields["data_dir"].default
    return "" if settings.data_dir == default else f" --data-dir {settings.data_dir}"


def curl_example(base_url: str, api_key: str) -> str:
    body = (
        '{"order_id": "ORDER-1", "buyer": {"name": "上海某某科技有限公司", '
        '"tax_id": "91440300MA5G9GK78Y"}, "lines": [{"name": "咨询服务", '
        '"tax_code": "3040201990000000000", "quantity": "2", "unit_price": "500", '
        '"tax_rate": "0.06"}]}'
    )
    return (
        f'curl -s {base_url}/v1/invoices -H "Authorization: Bearer {api_key}" '
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
