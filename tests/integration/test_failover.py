"""Losing the PostgreSQL primary under a worker, with a real primary and streaming standby
(`ops/pg_cluster.py`), and a worker whose store stops taking writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from kaipiao.clock import utcnow
from kaipiao.config import Settings
from kaipiao.domain.lifecycle import Status
from kaipiao.engine.worker import Worker
from kaipiao.ops.pg_cluster import PgCluster
from kaipiao.platform.outcomes import IssueOutcome
from kaipiao.platform.protocol import PlatformInvoice
from kaipiao.sandbox.fake import FakePlatform
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.migrate import upgrade
from tests.engine_support import FAST, accept, all_invoices, events_of

TAX_ID = "91310110666007217T"


async def until(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def cluster() -> AsyncIterator[PgCluster]:
    built = PgCluster(sync=True)
    try:
        await asyncio.to_thread(built.start)
        yield built
    finally:
        await asyncio.to_thread(built.remove)


class KillsThePrimary(FakePlatform):
    """Issues the invoice, then kills the primary before answering: the answer comes back to a
    worker whose store is gone."""

    def __init__(self, cluster: PgCluster) -> None:
        super().__init__()
        self.cluster = cluster
        self.killed = asyncio.Event()

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        outcome = await super().issue(invoice)
        if not self.killed.is_set():
            await asyncio.to_thread(self.cluster.kill_primary)
            self.killed.set()
        return outcome


@pytest.mark.postgres
async def test_primary_killed_during_a_platform_call_the_invoice_is_issued_once(
    cluster: PgCluster,
) -> None:
    db = Database(Settings(database_url=cluster.url).resolved_database_url(), pool_size=4)
    try:
        await upgrade(db)
        seller = await add_seller(db, name="甲", tax_id=TAX_ID, now=utcnow())
        [invoice_id] = await accept(db, seller.seller, 1)
        platform = KillsThePrimary(cluster)
        worker = Worker(db, platform, FAST)

        async def promote_after_the_kill() -> None:
            await platform.killed.wait()
            await asyncio.sleep(1.0)  # the answer is in hand; no host is writable
            await asyncio.to_thread(cluster.promote)

        promoter = asyncio.create_task(promote_after_the_kill())
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))  # its loop survives a failing claim
        await promoter
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            invoices = await all_invoices(db)
            if invoices[0].status is Status.ISSUED:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await running
        [invoice] = await all_invoices(db)  # read on the promoted standby
        assert invoice.status is Status.ISSUED
        assert platform.state.calls["issue:issued"] == 1
        assert sum(n for k, n in platform.state.calls.items() if k.startswith("issue:")) == 1
        [record] = [r for r in platform.state.records if r.serial_no == invoice.serial_no]
        assert invoice.invoice_number == record.invoice_number
        assert (await events_of(db, invoice_id)).count("issued") == 1
    finally:
        await db.dispose()


class StoreGoesDown:
    """A database whose writes fail like a lost server while `down` is set."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    async def write(self, work: Any) -> Any:
        if self.down:
            raise OperationalError("UPDATE", {}, ConnectionRefusedError("primary gone"))
        return await self.db.write(work)


class Blocks(FakePlatform):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.calls = 0

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        self.calls += 1
        await self.release.wait()
        return await super().issue(invoice)


async def test_a_failed_lease_renewal_stops_sends_until_a_renewal_succeeds(
    database: Database,
) -> None:
    seller = await add_seller(database, name="甲", tax_id=TAX_ID, now=utcnow())
    [invoice_id] = await accept(database, seller.seller, 1)
    store = StoreGoesDown(database)
    platform = Blocks()
    worker = Worker(store, platform, FAST)  # type: ignore[arg-type]
    assert await worker.claim_once() == 1
    await until(lambda: platform.calls == 1)
    assert worker._lease_alive(invoice_id)
    stop = asyncio.Event()
    renewer = asyncio.create_task(worker._renew_loop(stop))
    try:
        store.down = True
        await until(lambda: not worker._lease_alive(invoice_id))  # no call may start now
        store.down = False
        await until(lambda: worker._lease_alive(invoice_id))  # renewed: sends allowed again
    finally:
        stop.set()
        await renewer
        platform.release.set()
        await asyncio.gather(*worker.active.values())
    [invoice] = await all_invoices(database)
    assert invoice.status is Status.ISSUED
