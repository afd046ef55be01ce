"""The processes a drill runs: the sandbox platform, kaipiao (migrate, sellers, API, workers)
and the naive gateway, each a real process with its log in the work directory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from kaipiao.config import Settings
from kaipiao.domain.credit_code import check_character
from kaipiao.ops.drill_config import (
    LEASE_S,
    READY_API,
    READY_NAIVE,
    READY_SANDBOX,
    READY_WORKER,
    REGIONS,
    DrillConfig,
)
from kaipiao.ops.drill_result import (
    PlatformTruth,
    Tick,
)
from kaipiao.ops.drill_warning import WarningLog, learn_s
from kaipiao.ops.loadgen import LoadGenerator
from kaipiao.ops.processes import KAIPIAO, Running, clean_env, run_kaipiao, start_process
from kaipiao.store.database import Database
from kaipiao.store.overview import counts_for_sellers, outcomes_for_sellers, workers_seen

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


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
        if config.database_url:  # the data directory still holds the ledger key and heads
            self.store = ["--database-url", config.database_url, "--data-dir", str(self.data_dir)]
        else:
            self.store = ["--data-dir", str(self.data_dir)]
        settings = Settings(data_dir=self.data_dir, database_url=config.database_url)
        self.url_for_reads = settings.resolved_database_url()
        rate = max(400.0, 4 * config.rate * config.scenario.rate_factor)
        self.env = clean_env(KAIPIAO_LOG_LEVEL="warning", KAIPIAO_INTAKE_RATE_PER_S=str(rate),
                             KAIPIAO_INTAKE_BURST=str(int(rate * 2)),
                             KAIPIAO_WARN_LEARN_S=str(learn_s(config.duration_s)))  # fmt: skip
        self.warnings = WarningLog()
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
            self.warnings.read(await self.db.read(lambda c: workers_seen(c, _EPOCH)))
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
