"""`kaipiao drill`: a scenario of the field report, replayed with real processes.

The runner starts the sandbox platform, then kaipiao (`migrate`, two sellers in provinces 31 and
44, `serve --no-workers`, one or more `worker`s) on SQLite in a work directory or on the given
PostgreSQL URL, and drives open-loop load through it while the scenario's fault comes and goes
(`kaipiao.ops.scenarios`). It samples the backlog once a second, waits for the drain, then reads
kaipiao's store and the sandbox's ground truth and checks the invariants
(`kaipiao.ops.drill_result`). With `compare`, the same load and fault run again against the naive
synchronous gateway (`kaipiao.ops.naive`) on a fresh sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from kaipiao.config import Settings
from kaipiao.domain.credit_code import check_character
from kaipiao.ops.drill_result import (
    PlatformTruth,
    Result,
    Tick,
    Window,
    assess_kaipiao,
    assess_naive,
)
from kaipiao.ops.loadgen import LoadGenerator, Target
from kaipiao.ops.processes import KAIPIAO, Running, clean_env, run_kaipiao, start_process
from kaipiao.ops.scenarios import FAULT_END, FAULT_START, Scenario
from kaipiao.store.database import Database
from kaipiao.store.overview import counts_for_sellers, outcomes_for_sellers

REGIONS = ("31", "44")
CRASH_EVERY_S = 3.0
LEASE_S = 3.0
READY_SANDBOX = r"listening on (http://\S+)"
READY_API = r"kaipiao listening on (http://\S+)"
READY_WORKER = r"kaipiao worker (\S+) issuing"
READY_NAIVE = r"naive gateway listening on (http://\S+)"

Progress = Callable[[str, float, float, dict[str, int]], None]  # phase, elapsed, total, counts


def default_restart_command() -> tuple[str, ...]:
    """Restart the local PostgreSQL cluster (Debian's pg_ctlcluster)."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*"))
    version = versions[-1] if versions else "15"
    return ("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart")


@dataclass(frozen=True, slots=True)
class DrillConfig:
    scenario: Scenario
    work_dir: Path
    duration_s: float = 60.0
    rate: float = 20.0
    seed: int = 1
    database_url: str | None = None
    compare: bool = False
    client_timeout_s: float = 5.0
    drain_timeout_s: float = 120.0
    restart_command: tuple[str, ...] = field(default_factory=default_restart_command)

    @property
    def window(self) -> Window:
        d = self.duration_s
        return Window(d * FAULT_START, d * FAULT_END, d)

    @property
    def quota_per_seller(self) -> float | None:
        x = self.scenario.quota_x
        return None if x is None else self.rate * x / len(REGIONS)

    def base_knobs(self) -> dict[str, Any]:
        """The sandbox's calm: the scenario's base, its dedup, and the quota if it has one."""
        s = self.scenario
        knobs: dict[str, Any] = {**s.base, "profile": "ideal", "dedup": s.dedup}
        quota = self.quota_per_seller
        if quota is not None:
            knobs |= {"quota_per_s": quota, "quota_burst": max(5, int(quota))}
        return knobs

    def rate_at(self, t: float) -> float:
        w = self.window
        inside = w.fault_start <= t < w.fault_end
        return self.rate * (self.scenario.rate_factor if inside else 1.0)


@dataclass(slots=True)
class DrillReport:
    config: DrillConfig
    results: list[Result]
    started: datetime

    @property
    def passed(self) -> bool:
        return self.results[0].passed


def seller_tax_id(rng: random.Random, region: str) -> str:
    """A valid credit code in `region` (province code + 0100), unique to this drill."""
    body = f"91{region}0100" + "".join(rng.choice("0123456789") for _ in range(9))
    return body + check_character(body)


class Sandbox:
    def __init__(self, config: DrillConfig, name: str) -> None:
        self.config = config
        self.proc = start_process(
            [*KAIPIAO, "sandbox", "--port", "0", "--profile", "ideal", "--seed",
             str(config.seed)], config.work_dir / f"{name}.log", READY_SANDBOX,
        )  # fmt: skip
        self.url = self.proc.url

    async def put_faults(self, http: aiohttp.ClientSession, knobs: dict[str, Any]) -> None:
        async with http.put(f"{self.url}/_sandbox/faults", json=knobs) as response:
            if response.status != 200:
                raise RuntimeError(f"sandbox refused {knobs}: {await response.text()}")

    async def truth(
        self, http: aiohttp.ClientSession, tax_ids: list[str], since: datetime
    ) -> PlatformTruth:
        numbers: dict[tuple[int, str], list[str]] = {}
        until = datetime.now(UTC) + timedelta(hours=1)
        for index, tax_id in enumerate(tax_ids):
            page: int | None = 1
            while page is not None:
                params = {"seller_tax_id": tax_id, "issued_from": since.isoformat(),
                          "issued_to": until.isoformat(), "page": str(page)}  # fmt: skip
                async with http.get(f"{self.url}/v1/invoices", params=params) as response:
                    listed = await response.json()
                for item in listed["invoices"]:
                    if item["kind"] == "blue":
                        numbers.setdefault((index, item["order_ref"]), []).append(
                            item["invoice_number"]
                        )
                page = listed["next_page"]
        async with http.get(f"{self.url}/_sandbox/stats") as response:
            stats = await response.json()
        return PlatformTruth(numbers, stats["duplicates"]["by_order"],
                             stats["duplicates"]["by_serial"], stats["calls"])  # fmt: skip


class KaipiaoDeployment:
    """kaipiao's processes for one drill: the API and its workers on one store."""

    def __init__(self, config: DrillConfig, platform_url: str) -> None:
        self.config = config
        self.platform_url = platform_url
        self.data_dir = config.work_dir / "kaipiao"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if config.database_url:
            self.store = ["--database-url", config.database_url]
        else:
            self.store = ["--data-dir", str(self.data_dir)]
        settings = Settings(data_dir=self.data_dir, database_url=config.database_url)
        self.url_for_reads = settings.resolved_database_url()
        rate = max(400.0, 4 * config.rate * config.scenario.rate_factor)
        self.env = clean_env(KAIPIAO_LOG_LEVEL="warning", KAIPIAO_INTAKE_RATE_PER_S=str(rate),
                             KAIPIAO_INTAKE_BURST=str(int(rate * 2)))  # fmt: skip
        self.api: Running | None = None
        self.api_port = 0
        self.workers: list[Running] = []
        self.keys: list[str] = []
        self.tax_ids: list[str] = []
        self.seller_ids: list[str] = []
        self.db: Database | None = None
        self.crashes = 0

    def start(self) -> None:
        run_kaipiao("migrate", *self.store, env=self.env)
        rng = random.Random(f"{self.config.seed}-{time.time_ns()}")
        for region in REGIONS:
            tax_id = seller_tax_id(rng, region)
            quota = self.config.quota_per_seller
            added = json.loads(run_kaipiao(
                "seller", "add", "--name", f"drill {region}", "--tax-id", tax_id, "--region",
                region, "--json", *(["--quota", f"{quota:g}"] if quota else []), *self.store,
                env=self.env,
            ))  # fmt: skip
            self.keys.append(added["api_key"])
            self.seller_ids.append(added["seller_id"])
            self.tax_ids.append(tax_id)
        self.start_api()
        for _ in range(self.config.scenario.workers):
            self.workers.append(self.start_worker())
        self.db = Database(self.url_for_reads, pool_size=2)

    def start_api(self) -> None:
        self.api = start_process(
            [*KAIPIAO, "serve", "--port", str(self.api_port), "--no-workers", "--no-demo-seller",
             "--platform-url", self.platform_url, *self.store],
            self.config.work_dir / "api.log", READY_API, env=self.env,
        )  # fmt: skip
        self.api_port = int(self.api.url.rsplit(":", 1)[1])

    def start_worker(self) -> Running:
        settle = self.config.scenario.longest_call_s + 1
        return start_process(
            [*KAIPIAO, "worker", "--platform-url", self.platform_url, "--lease-s", str(LEASE_S),
             "--settle-s", str(settle), *self.store],
            self.config.work_dir / "workers.log", READY_WORKER, env=self.env,
        )  # fmt: skip

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    async def crash_worker(self, n: int) -> None:
        """kill -9 worker `n` (mod the count) mid-flight, and start its replacement."""
        i = n % len(self.workers)
        self.workers[i].kill()
        self.crashes += 1
        self.workers[i] = await asyncio.to_thread(self.start_worker)

    async def restart_store(self) -> None:
        """PostgreSQL: restart the server under the running processes. SQLite: the store lives in
        the processes, so kill -9 every one of them and start them again."""
        if self.config.database_url:
            self.crashes += 1
            await asyncio.to_thread(
                subprocess.run, self.config.restart_command, check=True, capture_output=True
            )
            return
        assert self.api is not None
        for proc in [self.api, *self.workers]:
            proc.kill()
            self.crashes += 1
        await asyncio.to_thread(self.start_api)
        for i in range(len(self.workers)):
            self.workers[i] = await asyncio.to_thread(self.start_worker)

    async def tick(self, t: float) -> Tick | None:
        assert self.db is not None
        try:
            counts = await self.db.read(lambda c: counts_for_sellers(c, self.seller_ids))
        except Exception:  # the store is restarting (db-restart): no sample this second
            return None
        return Tick(t, counts.get("queued", 0) + counts.get("issuing", 0), counts.get("issued", 0))

    async def outcomes(self) -> list[dict[str, Any]]:
        assert self.db is not None
        for _ in range(30):
            with contextlib.suppress(Exception):
                return await self.db.read(lambda c: outcomes_for_sellers(c, self.seller_ids))
            await asyncio.sleep(1)
        raise RuntimeError("kaipiao's store did not answer for 30 s after the drill")

    async def stop(self) -> None:
        if self.db is not None:
            await self.db.dispose()
        for proc in [*self.workers, *([self.api] if self.api else [])]:
            proc.stop()


class NaiveDeployment:
    """The naive synchronous gateway, one process; a crash drill kills that process."""

    def __init__(self, config: DrillConfig, platform_url: str, keys: list[str],
                 tax_ids: list[str]) -> None:  # fmt: skip
        self.config = config
        self.platform_url = platform_url
        self.keys = keys
        self.tax_ids = tax_ids
        self.sellers_file = config.work_dir / "naive-sellers.json"
        self.port = 0
        self.proc: Running | None = None
        self.generator: LoadGenerator | None = None
        self.crashes = 0

    def start(self) -> None:
        sellers = {
            key: {"tax_id": tax_id, "region": region}
            for key, tax_id, region in zip(self.keys, self.tax_ids, REGIONS, strict=True)
        }
        self.sellers_file.write_text(json.dumps(sellers))
        self.proc = start_process(
            [sys.executable, "-m", "kaipiao.ops.naive", "--platform-url", self.platform_url,
             "--sellers", str(self.sellers_file), "--port", str(self.port)],
            self.config.work_dir / "naive.log", READY_NAIVE,
        )  # fmt: skip
        self.port = int(self.proc.url.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        assert self.proc is not None
        return self.proc.url

    async def crash(self, n: int = 0) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.crashes += 1
        await asyncio.to_thread(self.start)

    async def tick(self, t: float) -> Tick | None:
        g = self.generator
        if g is None:
            return None
        return Tick(t, g.sent - len(g.samples), g.ok)

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


async def _timeline(
    config: DrillConfig,
    clock: Callable[[], float],
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    crash: Callable[[int], Awaitable[None]] | None,
) -> None:
    """Apply the fault at its start, crash things during it, restore the base at its end."""
    s, w = config.scenario, config.window

    async def until(moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - clock()))

    await until(w.fault_start)
    knobs = s.fault_knobs(w.fault_end - w.fault_start)
    if knobs:
        await sandbox.put_faults(http, knobs)
    if crash is not None:
        n = 0
        while clock() < w.fault_end:
            await crash(n)
            n += 1
            if s.crash != "worker":
                break
            await until(min(w.fault_end, w.fault_start + n * CRASH_EVERY_S))
    await until(w.fault_end)
    if knobs and not s.self_ending:
        await sandbox.put_faults(http, config.base_knobs())


async def _drive(
    config: DrillConfig,
    name: str,
    url: str,
    keys: list[str],
    sandbox: Sandbox,
    tick: Callable[[float], Awaitable[Tick | None]],
    crash: Callable[[int], Awaitable[None]] | None,
    progress: Progress | None,
    attach: Callable[[LoadGenerator], None] | None = None,
) -> tuple[LoadGenerator, list[Tick], float]:
    """Load, fault timeline and sampling; returns the generator, the ticks and the start time."""
    ticks: list[Tick] = []
    w = config.window
    total = config.duration_s + config.drain_timeout_s
    target = Target(url, tuple(keys), config.client_timeout_s, order_prefix=f"D{config.seed}")
    async with aiohttp.ClientSession() as http, LoadGenerator(target) as gen:
        started_at = time.time()
        if attach is not None:
            attach(gen)

        def phase(t: float) -> str:
            if t < w.fault_start:
                return "calm"
            if t < w.fault_end:
                return "fault"
            return "recovery" if t < w.load_end else "drain"

        async def sample() -> None:
            while True:
                t = gen.elapsed
                point = await tick(t)
                if point is not None:
                    ticks.append(point)
                    if t >= w.load_end and point.backlog == 0:
                        return
                if t >= total:
                    return
                if progress is not None:
                    accepted = gen.ok
                    progress(f"{name}: {phase(t)}", t, total, {
                        "sent": gen.sent, "accepted": accepted,
                        "backlog": point.backlog if point else -1,
                        "issued": point.issued if point else -1})  # fmt: skip
                await asyncio.sleep(1.0)

        controller = asyncio.create_task(_timeline(config, lambda: gen.elapsed, http, sandbox,
                                                   crash))  # fmt: skip
        sampler = asyncio.create_task(sample())
        await gen.open_loop(config.rate_at, config.duration_s)
        await controller
        await sampler
    return gen, ticks, started_at


async def _run_kaipiao(config: DrillConfig, progress: Progress | None) -> tuple[Result, list[str]]:
    s = config.scenario
    sandbox = Sandbox(config, "sandbox")
    deployment = KaipiaoDeployment(config, sandbox.url)
    try:
        async with aiohttp.ClientSession() as http:
            await sandbox.put_faults(http, config.base_knobs())
        since = datetime.now(UTC) - timedelta(minutes=5)
        await asyncio.to_thread(deployment.start)
        crash = {"worker": deployment.crash_worker,
                 "store": lambda n: deployment.restart_store()}.get(s.crash)  # fmt: skip
        gen, ticks, started_at = await _drive(
            config, "kaipiao", deployment.url, deployment.keys, sandbox, deployment.tick, crash,
            progress,
        )  # fmt: skip
        stored = await deployment.outcomes()
        async with aiohttp.ClientSession() as http:
            truth = await sandbox.truth(http, deployment.tax_ids, since)
        index = {seller_id: i for i, seller_id in enumerate(deployment.seller_ids)}
        region = (REGIONS.index(s.checked_region), s.checked_region) if s.checked_region else None
        result = assess_kaipiao(gen.samples, ticks, config.window, stored, index, truth,
                                started_at=started_at, callers_may_fail=s.callers_may_fail,
                                checked_region=region)  # fmt: skip
        result.crashes = deployment.crashes
        return result, deployment.tax_ids
    finally:
        await deployment.stop()
        sandbox.proc.stop()


async def _run_naive(config: DrillConfig, progress: Progress | None) -> Result:
    s = config.scenario
    sandbox = Sandbox(config, "naive-sandbox")
    rng = random.Random(f"naive-{config.seed}-{time.time_ns()}")
    tax_ids = [seller_tax_id(rng, region) for region in REGIONS]
    keys = [f"naive-key-{i}" for i in range(len(REGIONS))]
    naive = NaiveDeployment(config, sandbox.url, keys, tax_ids)
    try:
        async with aiohttp.ClientSession() as http:
            await sandbox.put_faults(http, config.base_knobs())
        since = datetime.now(UTC) - timedelta(minutes=5)
        await asyncio.to_thread(naive.start)
        # The naive gateway has no store and no workers: a crash of either is a crash of it.
        crash = naive.crash if s.crash != "none" else None

        def attach(gen: LoadGenerator) -> None:
            naive.generator = gen

        gen, ticks, _ = await _drive(config, "naive", naive.url, keys, sandbox, naive.tick, crash,
                                     progress, attach)  # fmt: skip
        async with aiohttp.ClientSession() as http:
            truth = await sandbox.truth(http, tax_ids, since)
        result = assess_naive(gen.samples, ticks, config.window, truth)
        result.crashes = naive.crashes
        return result
    finally:
        await naive.stop()
        sandbox.proc.stop()


async def run_drill(config: DrillConfig, progress: Progress | None = None) -> DrillReport:
    """Run the drill (and the naive gateway after it, with `compare`); the measured report."""
    config.work_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    kaipiao, _ = await _run_kaipiao(config, progress)
    results = [kaipiao]
    if config.compare:
        results.append(await _run_naive(config, progress))
    return DrillReport(config, results, started)


def describe_command(config: DrillConfig) -> str:
    """The `kaipiao drill` command line that repeats this drill."""
    parts = ["kaipiao", "drill", config.scenario.name, "--duration", f"{config.duration_s:g}",
             "--rate", f"{config.rate:g}", "--seed", str(config.seed)]  # fmt: skip
    if config.compare:
        parts.append("--compare")
    if config.database_url:
        parts += ["--database-url", "…"]
    return shlex.join(parts)
