"""`kaipiao drill db-failover`: the PostgreSQL primary dies for good under load.

The drill builds its own primary and streaming hot standby (`ops/pg_cluster.py`), runs the
sandbox and kaipiao (API + worker) on the multi-host URL, drives open-loop load, SIGKILLs the
primary at 30% of the run, promotes the standby `promote_after_s` later (the detection time of
Patroni or CloudNativePG), and keeps the load on. Every request refused while no host was
writable is retried afterwards with its own order id, as a caller would. Then it measures:

- RTO: primary killed → the first invoice accepted again (and the same after promotion), and
  → issuance back at its calm rate;
- RPO: invoices acknowledged to callers (2xx) that the new primary does not have, each named;
- duplicates and losses against the sandbox's ground truth (`assess_kaipiao`), and that each
  retried order has exactly one invoice;
- `kaipiao ledger verify` on the new primary.

With `sync` the standby is synchronous, so RPO must be 0; without, RPO is reported as measured.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from kaipiao.ops.drill import _drive
from kaipiao.ops.drill_config import DrillConfig, DrillReport, Progress
from kaipiao.ops.drill_deploy import KaipiaoDeployment, Sandbox
from kaipiao.ops.drill_result import Check, PlatformTruth, Result, assess_kaipiao
from kaipiao.ops.loadgen import LoadGenerator, Sample, invoice_body
from kaipiao.ops.pg_cluster import PgCluster
from kaipiao.ops.processes import KAIPIAO
from kaipiao.ops.recovery_report import Recovery, issuance_back, ledger_verify
from kaipiao.ops.scenarios import Scenario

FAILOVER = Scenario(
    "db-failover", "the PostgreSQL primary is killed (SIGKILL) and its standby promoted",
    crash="store", callers_may_fail=True,
)  # fmt: skip
ACCEPTING_BOUND_S = 30.0  # after promotion, intake must accept again within this


async def retry_refused(
    url: str, keys: list[str], samples: list[Sample], *, attempts: int = 30
) -> dict[tuple[int, str], int]:
    """Send every request that was not acknowledged again, with its own order id (a caller's
    retry); the last status of each, by (seller index, order id)."""
    last: dict[tuple[int, str], int] = {}
    todo = [s for s in samples if not s.ok]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for sample in todo:
            body = json.dumps(invoice_body(sample.order_id), ensure_ascii=False).encode()
            headers = {"Authorization": f"Bearer {keys[sample.seller]}",
                       "Content-Type": "application/json"}  # fmt: skip
            status = 0
            for _ in range(attempts):
                try:
                    async with http.post(f"{url}/v1/invoices", data=body,
                                         headers=headers) as response:  # fmt: skip
                        status = response.status
                except (TimeoutError, aiohttp.ClientError):
                    status = -1
                if 200 <= status < 300 or 400 <= status < 500:
                    break
                await asyncio.sleep(1.0)
            last[(sample.seller, sample.order_id)] = status
    return last


async def run_failover(
    config: DrillConfig, *, sync: bool, promote_after_s: float, progress: Progress | None = None
) -> tuple[DrillReport, Recovery]:
    """Run the drill (see the module text); the report and the recovery figures."""
    config.work_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    cluster = PgCluster(sync=sync, log_dir=config.work_dir)
    sandbox: Sandbox | None = None
    deployment: KaipiaoDeployment | None = None
    marks: dict[str, float] = {}
    try:
        await asyncio.to_thread(cluster.start)
        config = replace(config, database_url=cluster.url)
        sandbox = Sandbox(config, "sandbox")
        deployment = KaipiaoDeployment(config, sandbox.url)
        async with aiohttp.ClientSession() as http:
            await sandbox.put_faults(http, config.base_knobs())
        since = datetime.now(UTC) - timedelta(minutes=5)
        await asyncio.to_thread(deployment.start)
        generator: list[LoadGenerator] = []

        async def crash(_n: int) -> None:
            marks["killed"] = generator[0].elapsed
            await asyncio.to_thread(cluster.kill_primary)
            await asyncio.sleep(promote_after_s)
            await asyncio.to_thread(cluster.promote)
            marks["promoted"] = generator[0].elapsed

        run = await drive_and_assess(config, deployment, sandbox, crash, progress,
                                     generator.append, since, crashes=1)  # fmt: skip
        result, retried, stored, index, truth = (run.result, run.retried, run.stored, run.index,
                                                 run.truth)  # fmt: skip
        samples = run.samples
        verified, verdict = run.verified, run.verdict
    finally:
        if deployment is not None:
            await deployment.stop()
        if sandbox is not None:
            sandbox.proc.stop()
        await asyncio.to_thread(cluster.remove)
    killed, promoted = marks.get("killed", 0.0), marks.get("promoted", 0.0)
    by_order = {(index[r["seller_id"]], r["order_id"]): r for r in stored
                if r["seller_id"] in index}  # fmt: skip
    acked_missing = sorted(f"{deployment.seller_ids[s]}/{o}" for s, o in
                           {(x.seller, x.order_id) for x in samples if x.ok}
                           if (s, o) not in by_order)  # fmt: skip
    answers = [s.sent_at + s.latency_s for s in samples if s.ok and s.sent_at >= killed]
    accepting = min(answers) - killed if answers else None
    figures = Recovery(
        drill="db-failover", mode="sync" if sync else "async", killed_at_s=killed,
        promoted_at_s=promoted, rto_accepting_s=accepting,
        rto_issuing_s=issuance_back(result.per_second, killed, promoted),
        rpo_invoices=len(acked_missing), rpo_named=acked_missing,
        retried=len(retried), retried_ok=sum(1 for s in retried.values() if 200 <= s < 300),
        ledger_ok=verified, ledger_verdict=verdict,
    )  # fmt: skip
    _checks(result.checks, figures, sync, retried, by_order, truth.numbers)
    return DrillReport(replace(config, scenario=FAILOVER), [result], started), figures


@dataclass
class Assessed:
    """A recovery drill's load, judged: the drill's result, each refused request's last status
    when retried, what kaipiao stored, the seller index, the platform's truth, the ledger."""

    result: Result
    samples: list[Sample]
    retried: dict[tuple[int, str], int]
    stored: list[dict[str, Any]]
    index: dict[str, int]
    truth: PlatformTruth
    verified: bool
    verdict: str


async def drive_and_assess(
    config: DrillConfig,
    deployment: KaipiaoDeployment,
    sandbox: Sandbox,
    incident: Callable[[int], Awaitable[None]],
    progress: Progress | None,
    on_start: Callable[[LoadGenerator], None],
    since: datetime,
    *,
    crashes: int,
) -> Assessed:
    """Drive the load through `incident`, retry what was refused as a caller would, wait for
    the drain, and judge the store against the platform's truth; then verify the ledger."""
    gen, ticks, started_at = await _drive(
        config, "kaipiao", deployment.url, deployment.keys, sandbox, deployment.tick, incident,
        progress, on_start,
    )  # fmt: skip
    retried = await retry_refused(deployment.url, deployment.keys, gen.samples)
    await _drain(deployment, config.drain_timeout_s)
    stored = await deployment.outcomes()
    async with aiohttp.ClientSession() as http:
        truth = await sandbox.truth(http, deployment.tax_ids, since)
    index = {seller_id: i for i, seller_id in enumerate(deployment.seller_ids)}
    result = assess_kaipiao(gen.samples, ticks, config.window, stored, index, truth,
                            started_at=started_at, callers_may_fail=True)  # fmt: skip
    result.crashes = crashes
    verified, verdict = await asyncio.to_thread(
        ledger_verify, [*KAIPIAO, "ledger", "verify", *deployment.store]
    )
    return Assessed(result, gen.samples, retried, stored, index, truth, verified, verdict)


async def _drain(deployment: KaipiaoDeployment, timeout_s: float) -> None:
    """Wait until nothing is queued or issuing (the retried requests added work)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        tick = await deployment.tick(0.0)
        if tick is not None and tick.backlog == 0:
            return
        await asyncio.sleep(1.0)


def _checks(
    checks: list[Check],
    figures: Recovery,
    sync: bool,
    retried: dict[tuple[int, str], int],
    stored: dict[tuple[int, str], dict[str, object]],
    numbers: dict[tuple[int, str], list[str]],
) -> None:
    """The failover's own verdicts, beside `assess_kaipiao`'s. In async mode the loss check
    reports the RPO as measured instead of failing on it."""
    if not sync:
        for i, check in enumerate(checks):
            if check.name == "no loss":
                checks[i] = Check("RPO (async standby, as measured)", True,
                                  f"{figures.rpo_invoices} acknowledged invoices missing after "
                                  f"failover; {check.detail}")  # fmt: skip
    outage = figures.promoted_at_s - figures.killed_at_s
    after = None if figures.rto_accepting_s is None else figures.rto_accepting_s - outage
    checks.append(Check(
        "accepting again after promotion", after is not None and after <= ACCEPTING_BOUND_S,
        "never" if after is None else f"{max(after, 0.0):.1f} s after promotion "
        f"(bound {ACCEPTING_BOUND_S:g} s)",
    ))  # fmt: skip
    wrong = [key for key, status in retried.items()
             if not 200 <= status < 300 or len(numbers.get(key, [])) != 1
             or stored.get(key, {}).get("status") != "issued"]  # fmt: skip
    checks.append(Check(
        "each refused request, retried, has exactly one invoice", not wrong,
        f"{len(retried)} retried, {len(wrong)} without exactly one issued invoice"
        + (f" (first: {wrong[0][1]})" if wrong else ""),
    ))  # fmt: skip
    checks.append(Check("ledger verifies on the new primary", figures.ledger_ok,
                        figures.ledger_verdict))  # fmt: skip
