"""The engine against the in-memory platform, on SQLite and PostgreSQL: outcomes, fencing,
compensation. Transport faults are scripted, so each path is exercised exactly."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.engine.retry import RetryPolicy
from kaipiao.engine.worker import Worker
from kaipiao.platform.outcomes import Ambiguous, Throttled, Unavailable
from kaipiao.sandbox.fake import FakePlatform
from kaipiao.sandbox.faults import build_faults
from kaipiao.services.cancellation import cancel_invoice
from kaipiao.services.reversal import reverse_invoice
from kaipiao.services.sellers import NewSeller, add_seller
from kaipiao.store import queue
from kaipiao.store.database import Database
from kaipiao.store.tables import invoices
from tests.engine_support import FAST, accept, all_invoices, events_of, make_due, statuses
from tests.factories import platform_invoice


@pytest.fixture
async def seller(database: Database) -> NewSeller:
    return await add_seller(database, name="甲", tax_id="91310110666007217T", now=utcnow())


@pytest.fixture
def fake() -> FakePlatform:
    return FakePlatform()


async def drain(worker: Worker, db: Database, rounds: int = 20) -> None:
    for _ in range(rounds):
        await worker.run_until_idle(timeout_s=30)
        items = await all_invoices(db)
        if all(i.status not in (Status.QUEUED, Status.ISSUING) for i in items):
            return
        await make_due(db)
    raise AssertionError(f"work left: {statuses(await all_invoices(db))}")


async def test_issues_each_invoice_once(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    await accept(database, seller.seller, 25)
    worker = Worker(database, fake, FAST, seed=1)
    await drain(worker, database)
    items = await all_invoices(database)
    assert statuses(items) == {"issued": 25}
    assert len({i.invoice_number for i in items}) == 25
    stats = fake.state.stats(utcnow())
    assert stats["invoices_issued"] == 25 and stats["duplicates"] == {"by_serial": 0, "by_order": 0}
    assert await events_of(database, items[0].id) == ["accepted", "claimed", "issued"]


async def test_lost_answer_is_queried_not_resent_even_without_platform_dedup(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    fake.state.faults = build_faults({"dedup": False})
    [invoice_id] = await accept(database, seller.seller, 1)
    fake.script("issue", Ambiguous("connection reset"), after=True)  # issued, answer lost
    worker = Worker(database, fake, FAST, seed=2)
    await drain(worker, database)
    [item] = await all_invoices(database)
    assert item.status is Status.ISSUED and item.attempts == 2
    stats = fake.state.stats(utcnow())
    assert stats["invoices_issued"] == 1 and stats["duplicates"]["by_serial"] == 0
    assert stats["calls"]["query:issued"] == 1
    assert await events_of(database, invoice_id) == [
        "accepted",
        "claimed",
        "retry",
        "claimed",
        "issued",
    ]


async def test_unsent_call_is_confirmed_missing_then_resent(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    await accept(database, seller.seller, 1)
    fake.script("issue", Ambiguous("timeout before the platform saw it"))
    worker = Worker(database, fake, FAST, seed=3)
    await drain(worker, database)
    [item] = await all_invoices(database)
    assert item.status is Status.ISSUED
    assert fake.state.calls["query:notfound"] == 1
    assert fake.state.stats(utcnow())["invoices_issued"] == 1


async def test_unavailable_and_throttled_are_retried(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    await accept(database, seller.seller, 2)
    fake.script("issue", Unavailable("503"))
    fake.script("issue", Throttled(0.01))
    worker = Worker(database, fake, FAST, seed=4)
    await drain(worker, database)
    items = await all_invoices(database)
    assert statuses(items) == {"issued": 2}
    assert sorted(i.attempts for i in items) in ([1, 2], [2, 2], [1, 1])


async def test_permanent_rejection(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    await accept(database, seller.seller, 1)
    fake.state.faults = build_faults({})
    # The platform refuses the buyer: make the stored buyer tax id wrong behind intake's back.
    await database.write(
        lambda conn: conn.execute(
            update(invoices).values(buyer='{"name": "x", "tax_id": "91310110666007217U"}')
        )
    )
    worker = Worker(database, fake, FAST, seed=5)
    await drain(worker, database)
    [item] = await all_invoices(database)
    assert item.status is Status.REJECTED and item.error_code == "invalid_buyer_tax_id"


async def drain_within(worker: Worker, db: Database, seconds: float) -> None:
    """Drain, polling until a deadline: for work that waits on the platform's own clock."""
    deadline = time.monotonic() + seconds
    while True:
        await worker.run_until_idle(timeout_s=30)
        items = await all_invoices(db)
        if all(i.status not in (Status.QUEUED, Status.ISSUING) for i in items):
            return
        assert time.monotonic() < deadline, f"work left: {statuses(items)}"
        await make_due(db)
        await asyncio.sleep(0.05)


async def test_asynchronous_platform_is_polled(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    fake.state.faults = build_faults({"async_issue": True, "async_delay_s": 0.2})
    ids = await accept(database, seller.seller, 3)
    worker = Worker(database, fake, FAST, seed=6)
    await drain_within(worker, database, 30)
    assert statuses(await all_invoices(database)) == {"issued": 3}
    assert fake.state.stats(utcnow())["invoices_issued"] == 3
    # The platform answered "pending" to every submit, however long the first pass took; the
    # number came from a later query, not from a second submit.
    assert fake.state.calls["issue:pending"] == 3 and fake.state.calls["query:issued"] == 3
    for invoice_id in ids:
        events = await events_of(database, invoice_id)
        assert events[:3] == ["accepted", "claimed", "pending"] and events[-1] == "issued"


async def test_fast_refusals_during_an_outage_do_not_shrink_the_limit(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    """Refused connections (the platform did nothing, at once) are not congestion: the limit a
    worker reports is untouched by them (measured once: a limit that learned from them pinned
    itself at its minimum). The same number of 429s does cut it, so the measure can tell."""

    async def limit_after(outcome: Unavailable | Throttled, prefix: str) -> int:
        await accept(database, seller.seller, 30, prefix=prefix)
        for _ in range(30):
            fake.script("issue", outcome)
        worker = Worker(database, fake, FAST, seed=11)
        await drain_within(worker, database, 60)
        [limit] = worker.report()["limits"].values()  # type: ignore[attr-defined]
        return int(limit)

    initial = 20  # AdaptiveLimit's default
    assert await limit_after(Unavailable("connection refused"), "R") >= initial
    assert await limit_after(Throttled(0.01), "T") < initial
    assert statuses(await all_invoices(database)) == {"issued": 60}


async def test_exhausted_retries_wait_for_an_operator(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    await accept(database, seller.seller, 1)
    for _ in range(3):
        fake.script("issue", Unavailable("down"))
        fake.script("query", Unavailable("down"))
    config = replace(FAST, policy=RetryPolicy(base_s=0.01, cap_s=0.02, max_attempts=3))
    worker = Worker(database, fake, config, seed=7)
    await drain(worker, database)
    [item] = await all_invoices(database)
    assert item.status is Status.ATTENTION and item.error_code == "retries_exhausted"
    assert fake.state.stats(utcnow())["invoices_issued"] == 0


async def test_a_worker_that_lost_its_lease_cannot_overwrite(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    await accept(database, seller.seller, 1)
    now = utcnow()
    [stale] = await database.write(
        lambda conn: queue.claim_due(conn, owner="A", now=now, lease=timedelta(seconds=1), limit=5)
    )
    later = now + timedelta(seconds=2)
    [fresh] = await database.write(
        lambda conn: queue.claim_due(
            conn, owner="B", now=later, lease=timedelta(seconds=5), limit=5
        )
    )
    assert fresh.must_query_first and fresh.token == stale.token + 1
    lost = await database.write(
        lambda conn: queue.settle(
            conn,
            stale,
            Status.ISSUED,
            now=later,
            event="issued",
            fields={"invoice_number": "26311000000000000099"},
        )
    )
    assert lost is None
    kept = await database.write(
        lambda conn: queue.settle(conn, fresh, Status.QUEUED, now=later, event="retry")
    )
    assert kept is not None and kept.invoice_number is None


async def test_cancel_racing_an_issue_ends_issued_and_reversed(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    [invoice_id] = await accept(database, seller.seller, 1)
    now = utcnow()
    [_claimed] = await database.write(
        lambda conn: queue.claim_due(conn, owner="A", now=now, lease=timedelta(seconds=30), limit=1)
    )
    cancelled = await cancel_invoice(database, seller.seller, invoice_id, now=utcnow())
    assert cancelled.status is Status.ISSUING and cancelled.cancel_requested
    await database.write(
        lambda conn: queue.renew_leases(
            conn, owner="A", ids=[invoice_id], until=now, settle=timedelta(0)
        )
    )  # worker A died mid-call (the in-memory platform settles at once)
    worker = Worker(database, fake, FAST, seed=8)
    await drain(worker, database)
    items = {i.kind: i for i in await all_invoices(database)}
    assert items[Kind.BLUE].status is Status.REVERSED
    assert items[Kind.RED].status is Status.ISSUED and items[Kind.RED].total < 0
    stats = fake.state.stats(utcnow())
    assert stats["blue_issued"] == 1 and stats["red_issued"] == 1


async def test_reverse_an_issued_invoice(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    [invoice_id] = await accept(database, seller.seller, 1)
    worker = Worker(database, fake, FAST, seed=9)
    await drain(worker, database)
    red = await reverse_invoice(database, seller.seller, invoice_id, "sales_return", now=utcnow())
    assert red.kind is Kind.RED and red.original_id == invoice_id and red.status is Status.QUEUED
    await drain(worker, database)
    items = {i.kind: i for i in await all_invoices(database)}
    assert items[Kind.BLUE].status is Status.REVERSED
    assert items[Kind.RED].status is Status.ISSUED
    assert await events_of(database, invoice_id) == [
        "accepted",
        "claimed",
        "issued",
        "reversing",
        "reversed",
    ]


async def test_a_late_landing_request_is_not_sent_again(
    database: Database, seller: NewSeller, fake: FakePlatform
) -> None:
    """The original request reaches the platform late (after the worker's query found nothing):
    a "not found" before `resend_after` is not trusted, so nothing is sent twice."""
    fake.state.faults = build_faults({"dedup": False})
    [invoice_id] = await accept(database, seller.seller, 1)
    fake.script("issue", Ambiguous("timeout; the request is still on its way"))
    # A settle time far beyond any pass: the "too early" state cannot be skipped by a slow run.
    worker = Worker(database, fake, replace(FAST, settle_s=300.0), seed=10)
    await worker.run_until_idle()  # sent, ambiguous
    await make_due(database)
    await worker.run_until_idle()  # query: not found, too early to trust
    [item] = await all_invoices(database)
    # Once or twice: the first pass may already query again after the ambiguous send's backoff.
    assert item.status is Status.ISSUING and worker.stats["not_found_too_early"] >= 1
    assert fake.state.calls["issue:issued"] == 0
    # Now the original lands on the platform.
    landed = platform_invoice(item.serial_no, order_ref=item.order_id,
                              seller_tax_id=seller.seller.tax_id)  # fmt: skip
    fake.state.issue(landed, utcnow())
    await drain(worker, database)  # the next query finds it: adopted, never resent
    [item] = await all_invoices(database)
    assert item.status is Status.ISSUED
    stats = fake.state.stats(utcnow())
    assert stats["invoices_issued"] == 1 and stats["duplicates"]["by_serial"] == 0
    assert "unconfirmed" in await events_of(database, invoice_id)
