"""The engine against the real sandbox process over HTTP, under every fault profile, on SQLite and
PostgreSQL. After the fault has had its effect the sandbox goes back to normal behaviour; then
every invoice must be issued once: no loss, no duplicate, by the sandbox's own ground truth."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Status
from kaipiao.engine.worker import Worker
from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.platform.protocol import ListedPage
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from tests.engine_support import FAST, accept, all_invoices, statuses
from tests.factories import SELLER_TAX_ID
from tests.processes import Running

FAST_CALM = {"latency": {"kind": "fixed", "mean_ms": 20}}
# (fault knobs while it bites, how long it bites); EVIDENCE: what shows that it did bite.
PROFILES: dict[str, tuple[dict[str, Any], float]] = {
    "normal": ({"profile": "normal"}, 0.0),
    "degraded": (
        {
            "profile": "degraded",
            "latency": {"kind": "pareto", "min_ms": 150, "alpha": 1.5, "cap_ms": 3000},
        },
        3.0,
    ),
    "outage": ({"profile": "outage", "outage_for_s": 2.0}, 2.5),
    "ambiguous": ({"profile": "ambiguous", "ambiguous_rate": 0.3}, 2.0),
    "throttled": ({"profile": "throttled", "quota_per_s": 15, "quota_burst": 3}, 0.0),
    "regional": ({"profile": "regional"}, 0.0),
}


EVIDENCE: dict[str, str] = {
    "degraded": "sandbox:issue:failure_",
    "outage": "worker:unavailable",
    "ambiguous": "sandbox:issue:ambiguous_drop",
    "throttled": "sandbox:issue:throttled",
}


async def put_faults(sandbox: Running, spec: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        (await client.put(f"{sandbox.url}/_sandbox/faults", json=spec)).raise_for_status()


async def sandbox_stats(sandbox: Running) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{sandbox.url}/_sandbox/stats")).json()  # type: ignore[no-any-return]


async def run_for(worker: Worker, seconds: float) -> None:
    """Let `worker` run for `seconds` (while a fault bites), then stop it gracefully."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


async def run_until_terminal(worker: Worker, db: Database, timeout_s: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            items = await all_invoices(db)
            if all(i.status not in (Status.QUEUED, Status.ISSUING) for i in items):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"not terminal in {timeout_s}s: {statuses(await all_invoices(db))}")
    finally:
        stop.set()
        await task


@pytest.mark.slow
@pytest.mark.parametrize("profile", list(PROFILES))
async def test_every_invoice_issued_once_under(
    profile: str, database: Database, sandbox: Running
) -> None:
    faults, bite_s = PROFILES[profile]
    seller = await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow(), region="44")
    await put_faults(sandbox, faults)
    count = 60
    await accept(database, seller.seller, count, prefix=profile)
    platform = HttpPlatform(
        sandbox.url, HttpSettings(read_timeout_s=1.0, connect_timeout_s=0.5, pool_timeout_s=2.0)
    )
    # settle_s ≥ the longest latency the sandbox is given here (3 s), so a late request is
    # never mistaken for a missing one.
    config = replace(FAST, lease_s=4.0, renew_every_s=1.0, settle_s=3.5)
    worker = Worker(database, platform, config, seed=11)
    await run_for(worker, bite_s)
    during = await sandbox_stats(sandbox)
    await put_faults(sandbox, {"profile": "ideal", **FAST_CALM})
    try:
        await run_until_terminal(Worker(database, platform, config, seed=12), database, 60)
    finally:
        await platform.aclose()
    evidence = EVIDENCE.get(profile)
    if evidence is not None:
        source, marker = evidence.split(":", 1)
        seen = during["calls"] if source == "sandbox" else worker.stats
        assert any(marker in key and n > 0 for key, n in seen.items()), (profile, seen)
    items = await all_invoices(database)
    assert statuses(items) == {"issued": count}, statuses(items)
    stats = await sandbox_stats(sandbox)
    assert stats["duplicates"] == {"by_serial": 0, "by_order": 0}, stats
    assert stats["blue_issued"] == count
    listing = HttpPlatform(sandbox.url)
    try:
        page = await listing.list_issued(
            SELLER_TAX_ID, utcnow() - timedelta(hours=1), utcnow() + timedelta(hours=1)
        )
    finally:
        await listing.aclose()
    assert isinstance(page, ListedPage)
    on_platform = {i.serial_no: i.invoice_number for i in page.invoices}
    assert on_platform == {i.serial_no: i.invoice_number for i in items}
