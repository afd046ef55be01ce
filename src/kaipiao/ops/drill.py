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
import random
import shlex
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp

from kaipiao.ops.drill_config import (
    CRASH_EVERY_S,
    REGIONS,
    DrillConfig,
    DrillReport,
    Progress,
)
from kaipiao.ops.drill_deploy import KaipiaoDeployment, NaiveDeployment, Sandbox, seller_tax_id
from kaipiao.ops.drill_result import (
    Result,
    Tick,
    assess_kaipiao,
    assess_naive,
)
from kaipiao.ops.drill_warning import assess_warnings
from kaipiao.ops.loadgen import LoadGenerator, Target
from kaipiao.ops.scenarios import ESCALATE_AT


async def _timeline(
    config: DrillConfig,
    clock: Callable[[], float],
    http: aiohttp.ClientSession,
    sandbox: Sandbox,
    crash: Callable[[int], Awaitable[None]] | None,
) -> None:
    """Apply the fault at its start (and its escalation part-way), crash things during it,
    restore the base at its end."""
    s, w = config.scenario, config.window

    async def until(moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - clock()))

    await until(w.fault_start)
    knobs = s.fault_knobs(w.fault_end - w.fault_start)
    if knobs:
        await sandbox.put_faults(http, knobs)
    if s.escalation is not None:
        await until(w.fault_start + (w.fault_end - w.fault_start) * ESCALATE_AT)
        await sandbox.put_faults(http, s.escalation)
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
        assess_warnings(result, deployment.warnings, started_at, config.window, s.name)
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
