"""`kaipiao drill restore`: the store is gone and comes back from a backup.

Open-loop load runs throughout. At 30% of the run `kaipiao backup` copies the store while it
serves; load goes on. At 55% the platform stops answering (so some invoices accepted after the
backup never reach it: the loss a restore cannot undo); at 60% every kaipiao process is killed
and the store destroyed (the SQLite file deleted, or the PostgreSQL database dropped), the
platform comes back, `kaipiao restore` puts the backup back and recovers from the platform what
it issued since, and kaipiao starts again. Requests refused meanwhile are retried by their
callers with their own order ids. Then it measures:

- RPO: acknowledged invoices missing after recovery, each named; the check is that they are
  exactly the acknowledged ones that never reached the platform;
- every invoice the platform issued is in the store, issued, with the platform's number;
- duplicates (must be 0: a recovered invoice is never sent again);
- RTO: store destroyed → the first invoice accepted again, → issuance back at rate;
- `kaipiao ledger verify`: passes, and says the chain was rolled back by the restore.

Checkpoints are signed every 2 s here, so heads past the backup are published before the loss
and `ledger verify` names them as the evidence of what was lost.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from kaipiao.ops.drill_config import DrillConfig, DrillReport, Progress
from kaipiao.ops.drill_deploy import KaipiaoDeployment, Sandbox
from kaipiao.ops.drill_failover import drive_and_assess
from kaipiao.ops.drill_result import Check
from kaipiao.ops.loadgen import LoadGenerator
from kaipiao.ops.processes import run_kaipiao
from kaipiao.ops.recovery_report import Recovery, issuance_back
from kaipiao.ops.scenarios import Scenario
from kaipiao.store.backup import libpq_url, sqlite_path
from kaipiao.store.database import Database

RESTORE = Scenario(
    "restore", "a backup mid-load; the store destroyed, restored and recovered from the platform",
    crash="store", callers_may_fail=True,
)  # fmt: skip
BACKUP_AT, OUTAGE_AT, DESTROY_AT = 0.3, 0.55, 0.6


async def _database(server_url: str, name: str, *, drop: bool) -> None:
    """Create (or drop) database `name` on the server of `server_url`."""
    conn = await asyncpg.connect(libpq_url(server_url))
    try:
        if drop:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def run_restore(
    config: DrillConfig, progress: Progress | None = None, *, database_url: str | None
) -> tuple[DrillReport, Recovery]:
    """Run the drill (see the module text); the report and the recovery figures."""
    config.work_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    name = f"kaipiao_restore_{secrets.token_hex(4)}"
    server: str | None = None
    if database_url:
        from kaipiao.config import Settings

        server = Settings(database_url=database_url).resolved_database_url()
        await _database(server, name, drop=False)
        base, _, query = server.partition("?")
        config = replace(config, database_url=base.rsplit("/", 1)[0] + f"/{name}"
                         + (f"?{query}" if query else ""))  # fmt: skip
    sandbox = Sandbox(config, "sandbox")
    deployment = KaipiaoDeployment(config, sandbox.url)
    deployment.env["KAIPIAO_LEDGER_CHECKPOINT_S"] = "2"
    backup_file = config.work_dir / "kaipiao.backup"
    marks: dict[str, float] = {}
    generator: list[LoadGenerator] = []
    restore_said: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            await sandbox.put_faults(http, config.base_knobs())
        since = datetime.now(UTC) - timedelta(minutes=5)
        await asyncio.to_thread(deployment.start)
        d = config.duration_s

        async def until(share: float) -> None:
            await asyncio.sleep(max(0.0, share * d - generator[0].elapsed))

        async def incident(_n: int) -> None:
            marks["backup"] = generator[0].elapsed
            await asyncio.to_thread(run_kaipiao, "backup", str(backup_file), *deployment.store,
                                    env=deployment.env)  # fmt: skip
            await until(OUTAGE_AT)
            outage_s = (DESTROY_AT - OUTAGE_AT) * d + 1.0  # the listener closes: it reopens
            async with aiohttp.ClientSession() as http:  # by itself, after the destruction
                await sandbox.put_faults(http, {"outage": "refuse", "outage_for_s": outage_s})
            reopens = generator[0].elapsed + outage_s + 0.5
            await until(DESTROY_AT)
            marks["destroyed"] = generator[0].elapsed
            await asyncio.to_thread(_destroy, deployment, server, name)
            await asyncio.sleep(max(0.0, reopens - generator[0].elapsed))
            async with aiohttp.ClientSession() as http:
                await sandbox.put_faults(http, config.base_knobs())
            restore_said.append(await asyncio.to_thread(
                run_kaipiao, "restore", str(backup_file), "--platform-url", sandbox.url,
                *deployment.store, env=deployment.env,
            ))  # fmt: skip
            await asyncio.to_thread(deployment.start_api)
            for i in range(len(deployment.workers)):
                deployment.workers[i] = await asyncio.to_thread(deployment.start_worker)
            marks["restored"] = generator[0].elapsed
            if deployment.db is not None:  # its connections were to the store destroyed
                await deployment.db.dispose()
            deployment.db = Database(deployment.url_for_reads, pool_size=2)

        run = await drive_and_assess(config, deployment, sandbox, incident, progress,
                                     generator.append, since,
                                     crashes=1 + len(deployment.workers))  # fmt: skip
        result, retried, stored, index, truth = (run.result, run.retried, run.stored, run.index,
                                                 run.truth)  # fmt: skip
        samples = run.samples
        verified, verdict = run.verified, run.verdict
    finally:
        await deployment.stop()
        sandbox.proc.stop()
        if server is not None:
            await _database(server, name, drop=True)
    by_order = {(index[r["seller_id"]], r["order_id"]): r for r in stored
                if r["seller_id"] in index}  # fmt: skip
    acked = {(s.seller, s.order_id): s for s in samples if s.ok}
    missing = {key for key in acked if key not in by_order}
    never_sent = {key for key in acked if not truth.numbers.get(key)}
    destroyed, restored = marks.get("destroyed", 0.0), marks.get("restored", 0.0)
    answers = [s.sent_at + s.latency_s for s in samples if s.ok and s.sent_at >= destroyed]
    said = restore_said[0] if restore_said else ""
    recovered = sum(1 for line in said.splitlines() if line.strip().startswith("recovered sel_"))
    figures = Recovery(
        drill="restore", mode="postgresql" if database_url else "sqlite",
        killed_at_s=destroyed, promoted_at_s=restored,
        rto_accepting_s=min(answers) - destroyed if answers else None,
        rto_issuing_s=issuance_back(result.per_second, destroyed, restored),
        rpo_invoices=len(missing),
        rpo_named=sorted(f"{deployment.seller_ids[s]}/{o}" for s, o in missing),
        retried=len(retried), retried_ok=sum(1 for s in retried.values() if 200 <= s < 300),
        ledger_ok=verified, ledger_verdict=verdict, backup_at_s=marks.get("backup"),
        recovered=recovered,
        recover_report=next((line for line in said.splitlines()
                             if line.startswith("recovered from")), said[-300:]),
    )  # fmt: skip
    platform_missing = [key for key, numbers in truth.numbers.items()
                        if by_order.get(key, {}).get("status") != "issued"
                        or by_order[key].get("invoice_number") not in numbers]  # fmt: skip
    before_backup = [key for key in missing if acked[key].sent_at < marks.get("backup", 0.0) - 1]
    for i, check in enumerate(result.checks):
        if check.name == "no loss":
            result.checks[i] = Check(
                "lost = acknowledged after the backup, never on the platform",
                missing == never_sent and not before_backup,
                f"{len(missing)} acknowledged invoices missing, {len(never_sent)} acknowledged "
                f"never reached the platform, {len(before_backup)} missing from before the backup",
            )  # fmt: skip
    result.checks += [
        Check("every invoice the platform issued is in the store", not platform_missing,
              f"{len(truth.numbers)} orders issued on the platform, {len(platform_missing)} "
              "not issued here under the platform's number"),
        Check("ledger verifies and names the restore", verified and "rolled back" in verdict,
              verdict),
        Check("accepting again after the restore", bool(answers),
              f"{figures.rto_accepting_s or 0:.1f} s after the store was destroyed"),
    ]  # fmt: skip
    return DrillReport(replace(config, scenario=RESTORE), [result], started), figures


def _destroy(deployment: KaipiaoDeployment, server: str | None, name: str) -> None:
    """kill -9 every kaipiao process, then delete the store (PostgreSQL: drop the database and
    create it empty, as a new server would have it)."""
    assert deployment.api is not None
    for proc in [deployment.api, *deployment.workers]:
        proc.kill()
    if server is not None:
        asyncio.run(_database(server, name, drop=True))
        asyncio.run(_database(server, name, drop=False))
        return
    path = sqlite_path(deployment.url_for_reads)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
