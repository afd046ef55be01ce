"""Composition root: builds the database, the platform and the app from Settings, and runs them.

Nothing here runs at import time; the CLI calls these functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import start_http_server

from kaipiao.api.app import create_app
from kaipiao.clock import utcnow
from kaipiao.config import Settings
from kaipiao.engine.webhooks import WebhookSender
from kaipiao.engine.worker import Worker, WorkerConfig
from kaipiao.ledger.signing import Signer
from kaipiao.observability import logs
from kaipiao.observability.metrics import Metrics
from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.platform.nuonuo import NuonuoConfig, NuonuoPlatform
from kaipiao.platform.nuonuo.codes import CodeTable, Methods
from kaipiao.platform.protocol import TaxPlatform
from kaipiao.platform.router import PlatformRouter, UnresolvedAccount
from kaipiao.sandbox.faults import PROFILES
from kaipiao.sandbox.server import SandboxServer
from kaipiao.sandbox.state import SandboxState
from kaipiao.services import providers, sellers, status
from kaipiao.services.ledger import CheckpointJob
from kaipiao.services.reconcile import ReconcileJob
from kaipiao.services.secrets import SecretBox, SecretError
from kaipiao.store import sellers as seller_store
from kaipiao.store.database import Database
from kaipiao.store.migrate import upgrade

log = logging.getLogger("kaipiao")
DEMO_TAX_ID = "91310110666007217T"
DEMO_FILE = "demo-seller.json"


WORKER_LINGER_S = 0.01
"""A worker's SQLite writer waits this long to gather results into one commit (measured: see
bench/README.md, issuance)."""


def database_for(settings: Settings, *, linger_s: float = 0.0) -> Database:
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.resolved_database_url(), linger_s=linger_s)


@dataclass(frozen=True, slots=True)
class DemoSeller:
    seller_id: str
    api_key: str


def read_demo_seller(data_dir: Path) -> DemoSeller | None:
    path = data_dir / DEMO_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return DemoSeller(data["seller_id"], data["api_key"])


async def ensure_demo_seller(db: Database, data_dir: Path) -> DemoSeller | None:
    """On a first start with an empty store, register a demo seller and keep its key (0600) in
    the data directory so later starts can show it again. None if other sellers exist."""
    existing = read_demo_seller(data_dir)
    if existing is not None:
        return existing
    if await sellers.list_sellers(db):
        return None
    created = await sellers.add_seller(
        db, name="Demo Seller (sandbox)", tax_id=DEMO_TAX_ID, now=utcnow(), region="31"
    )
    demo = DemoSeller(created.seller.id, created.api_key)
    path = data_dir / DEMO_FILE
    path.touch(mode=0o600)
    path.write_text(json.dumps({"seller_id": demo.seller_id, "api_key": demo.api_key}))
    return demo


def curl_example(base_url: str, api_key: str) -> str:
    body = (
        '{"order_id": "ORDER-1", "buyer": {"name": "上海某某科技有限公司", '
        '"tax_id": "91440300MA5G9GK78Y"}, "lines": [{"name": "咨询服务", '
        '"tax_code": "3040201990000000000", "quantity": "2", "unit_price": "500", '
        '"tax_rate": "0.06"}]}'
    )
    return (
        f"curl -s {base_url}/v1/invoices -H 'Authorization: Bearer {api_key}' "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def configure_logging(level: str) -> None:
    logs.configure(level, sys.stderr)


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        lease_s=settings.lease_s,
        renew_every_s=settings.lease_s / 3,
        max_in_flight=settings.max_in_flight,
        settle_s=settings.settle_s,
        shutdown_grace_s=min(20.0, settings.lease_s),
    )


def _codes(text: str) -> frozenset[str]:
    return frozenset(code.strip() for code in text.split(",") if code.strip())


def nuonuo_config(settings: Settings) -> NuonuoConfig:
    return NuonuoConfig(
        url=settings.nuonuo_url,
        methods=Methods(issue=settings.nuonuo_issue_method),
        codes=CodeTable(duplicate=_codes(settings.nuonuo_duplicate_codes),
                        auth=_codes(settings.nuonuo_auth_codes)),
        callback_url=settings.nuonuo_callback_url,
    )  # fmt: skip


def platform_for(settings: Settings, url: str, db: Database) -> PlatformRouter:
    """The engine's platform: the sandbox protocol at `url` by default, and each seller's own
    provider account (Nuonuo) where it has one."""
    http = HttpSettings(
        read_timeout_s=settings.platform_timeout_s,
        max_connections=max(10, settings.max_in_flight),
    )
    box: SecretBox | None = None

    async def resolve(tax_id: str) -> TaxPlatform | None:
        nonlocal box
        found = await db.read(lambda conn: seller_store.platform_of(conn, tax_id))
        if found is None:
            return None
        name, stored = found
        if name != "nuonuo":
            raise UnresolvedAccount(f"seller {tax_id}: unknown platform {name!r}")
        try:
            box = box or SecretBox.load_or_create(settings.secrets_key_path())
            account = providers.nuonuo_account(stored, box, os.environ)
        except (SecretError, OSError, ValueError) as exc:
            raise UnresolvedAccount(f"seller {tax_id}: {exc}") from None
        return NuonuoPlatform(account, nuonuo_config(settings), http)

    return PlatformRouter(HttpPlatform(url, http), resolve)


async def run_worker(settings: Settings) -> None:
    """A worker process: issue due invoices until SIGINT/SIGTERM, then stop gracefully."""
    if settings.platform_url is None:
        raise SystemExit("kaipiao worker needs --platform-url (or KAIPIAO_PLATFORM_URL)")
    db = database_for(settings, linger_s=WORKER_LINGER_S)
    await upgrade(db)
    platform = platform_for(settings, settings.platform_url, db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics = Metrics()
    metrics.watch_transactions(db.stats)
    worker = Worker(db, platform, worker_config(settings), observer=metrics)
    print(f"kaipiao worker {worker.owner} issuing on {settings.platform_url}", flush=True)
    if settings.metrics_port is not None:
        server, _ = start_http_server(settings.metrics_port, settings.host, metrics.registry)
        port = server.server_address[1]
        print(f"  metrics:  http://{settings.host}:{port}/metrics", flush=True)
    senders = asyncio.create_task(WebhookSender(db, utcnow).run(stop))
    try:
        await worker.run(stop)
    finally:
        stop.set()
        await senders
        await platform.aclose()
        await db.dispose()


async def poll_status(app: Any, db: Database, stop: asyncio.Event, every_s: float = 5.0) -> None:
    """Keep `app.state.snapshot` (the deployment-wide gauges on /metrics) fresh."""
    while not stop.is_set():
        try:
            app.state.snapshot = await status.snapshot(db, utcnow())
        except Exception:
            log.exception("reading the status snapshot failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def signer_for(settings: Settings) -> Signer:
    return Signer.load_or_create(settings.ledger_key_path())


def checkpoint_job(settings: Settings, db: Database) -> CheckpointJob:
    """Signs ledger checkpoints in `serve` (workers do not: one signer per deployment)."""
    return CheckpointJob(
        db, signer_for(settings), utcnow,
        every_s=settings.ledger_checkpoint_s, events=settings.ledger_checkpoint_events,
        published=settings.ledger_published_path(),
    )  # fmt: skip


def _tune_gc() -> None:
    """Move everything alive after start-up out of the collector's way, and collect the young
    generation less often: a request allocates hundreds of short-lived objects, and the
    collections they set off were measurable time under load (bench/README.md, intake)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


async def serve(settings: Settings) -> None:
    """Run the API (and, without --platform-url, a sandbox platform) until SIGINT/SIGTERM."""
    db = database_for(settings)
    await upgrade(db)
    sandbox: SandboxServer | None = None
    platform_url = settings.platform_url
    if platform_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        state = SandboxState(
            faults=PROFILES["normal"], journal_path=settings.data_dir / "sandbox.jsonl"
        )
        sandbox = SandboxServer(state, "127.0.0.1", 0)
        await sandbox.start()
        platform_url = sandbox.url
    demo = await ensure_demo_seller(db, settings.data_dir) if settings.demo_seller else None
    app = create_app(settings, db)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        access_log=False, lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no startup event
        await asyncio.sleep(0.05)
    if server.started:
        _tune_gc()
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://{settings.host}:{port}"
        print(f"kaipiao listening on {base} (pid {os.getpid()})", flush=True)
        print(f"  store:    {_redact(settings.resolved_database_url())}", flush=True)
        where = "in-process sandbox" if sandbox else "configured platform"
        print(f"  platform: {platform_url} ({where})", flush=True)
        if demo is not None:
            print(
                f"  demo seller {demo.seller_id}; try:\n    {curl_example(base, demo.api_key)}",
                flush=True,
            )
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    platform = platform_for(settings, platform_url, db)
    if settings.workers:
        worker = Worker(db, platform, worker_config(settings), observer=app.state.metrics)
        worker_task = asyncio.create_task(worker.run(stop))
        print(f"  workers:  {worker.owner}", flush=True)
    checkpoints = asyncio.create_task(checkpoint_job(settings, db).run(stop))
    senders = asyncio.create_task(WebhookSender(db, utcnow).run(stop))
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
        await platform.aclose()
        if sandbox is not None:
            await sandbox.stop()
        await db.dispose()


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
