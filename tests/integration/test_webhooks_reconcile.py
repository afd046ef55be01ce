"""Webhooks from the outbox to a real HTTP receiver, and reconciliation against the real sandbox
process, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import text, update

from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Status
from kaipiao.engine.dispatch import platform_invoice
from kaipiao.engine.retry import RetryPolicy
from kaipiao.engine.webhooks import WebhookConfig, WebhookSender
from kaipiao.engine.worker import Worker
from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.platform.outbound import OutboundPolicy, parse_networks
from kaipiao.services import cancellation, intake
from kaipiao.services.invoice_request import InvoiceCreate
from kaipiao.services.reconcile import reconcile
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.documents import render_invoice
from kaipiao.store.tables import invoices
from tests.engine_support import FAST, accept, all_invoices
from tests.factories import SELLER_TAX_ID, invoice_body
from tests.processes import Running

# The receivers these tests start listen on loopback, which the outbound policy refuses unless
# the operator allows it (KAIPIAO_OUTBOUND_ALLOW_NETWORKS): these tests allow it explicitly.
LOOPBACK_ALLOWED = OutboundPolicy(parse_networks("127.0.0.0/8"))


@dataclass
class Receiver:
    url: str
    fail_first: int = 2
    seen: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box = Receiver("")

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        box.seen.append({"headers": dict(request.headers), "body": body})
        if len(box.seen) <= box.fail_first:
            return web.Response(status=503)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    box.url = f"http://127.0.0.1:{port}/hook"
    yield box
    await runner.cleanup()


async def _accept_with_callback(db: Database, seller: Any, order: str, url: str) -> str:
    body = InvoiceCreate.model_validate({**invoice_body(order), "callback_url": url})
    accepted = await intake.submit_invoice(
        db, seller, body.to_domain(), body.canonical(), now=utcnow()
    )
    return str(accepted.document["id"])


async def test_a_terminal_change_is_delivered_signed_and_retried_until_accepted(
    database: Database, receiver: Receiver
) -> None:
    new = await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())
    invoice_id = await _accept_with_callback(database, new.seller, "HOOK-1", receiver.url)
    cancelled = await cancellation.cancel_invoice(database, new.seller, invoice_id, now=utcnow())
    assert cancelled.status is Status.CANCELLED
    sender = WebhookSender(
        database,
        utcnow,
        WebhookConfig(backoff=RetryPolicy(base_s=0.05, cap_s=0.1)),
        policy=LOOPBACK_ALLOWED,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        for _ in range(100):
            state = await database.read(lambda c: c.execute(
                text("SELECT status, attempts FROM webhook_deliveries")).one())  # fmt: skip
            if state.status == "delivered":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert (state.status, state.attempts) == ("delivered", 3)  # two 503s, then 204
    assert len(receiver.seen) == 3
    event_ids = {hit["headers"]["Kaipiao-Event-Id"] for hit in receiver.seen}
    assert len(event_ids) == 1  # the same event id on every retry
    last = receiver.seen[-1]
    stamp = last["headers"]["Kaipiao-Timestamp"]
    expected = hmac.new(new.seller.webhook_secret.encode(), f"{stamp}.".encode() + last["body"],
                        hashlib.sha256).hexdigest()  # fmt: skip
    assert last["headers"]["Kaipiao-Signature"] == f"v1={expected}"
    assert new.seller.webhook_secret.startswith("whsec_")
    payload = json.loads(last["body"])
    assert payload["type"] == "invoice.cancelled" and payload["invoice"]["id"] == invoice_id
    # The body carries the invoice's one public document, times in the API's `Z` form.
    [stored] = [i for i in await all_invoices(database) if i.id == invoice_id]
    assert payload["invoice"] == render_invoice(stored)
    assert payload["created_at"].endswith("Z") and payload["invoice"]["updated_at"].endswith("Z")


async def test_a_delivery_is_given_up_only_after_the_retry_window(
    database: Database, receiver: Receiver
) -> None:
    receiver.fail_first = 1000
    new = await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())
    invoice_id = await _accept_with_callback(database, new.seller, "HOOK-2", receiver.url)
    await cancellation.cancel_invoice(database, new.seller, invoice_id, now=utcnow())
    sender = WebhookSender(
        database,
        utcnow,
        WebhookConfig(backoff=RetryPolicy(base_s=0.01, cap_s=0.02)),
        policy=LOOPBACK_ALLOWED,
    )
    async with LOOPBACK_ALLOWED.session(5.0) as session:
        for _ in range(3):
            await sender.send_due(session)
            await asyncio.sleep(0.05)
        state = await database.read(lambda c: c.execute(
            text("SELECT status, attempts, last_status FROM webhook_deliveries")).one())  # fmt: skip
        assert state.status == "pending" and state.attempts >= 2 and state.last_status == 503
        old = utcnow() - timedelta(hours=73)  # the change happened longer ago than the window
        await database.write(lambda c: c.execute(
            text("UPDATE webhook_deliveries SET created_at = :old, next_attempt_at = :old"),
            {"old": old.replace(tzinfo=None) if database.dialect == "sqlite" else old}))  # fmt: skip
        await sender.send_due(session)
    state = await database.read(lambda c: c.execute(
        text("SELECT status FROM webhook_deliveries")).one())  # fmt: skip
    assert state.status == "failed"


async def test_reconciliation_settles_lost_outcomes_and_flags_contradictions(
    database: Database, sandbox: Running
) -> None:
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    platform = HttpPlatform(sandbox.url, HttpSettings(read_timeout_s=2.0))
    try:
        ids = await accept(database, seller, 6, prefix="R")
        worker = Worker(database, platform, FAST)
        await worker.run_until_idle(timeout_s=30)
        assert {i.status for i in await all_invoices(database)} == {Status.ISSUED}
        clean = await reconcile(database, platform, since=utcnow() - timedelta(hours=1),
                                clock=utcnow, grace=timedelta(0))  # fmt: skip
        assert (clean.checked, clean.settled, clean.contradictions) == (6, 0, [])

        # A lost answer: the platform issued R-6, kaipiao never heard (still issuing).
        lost_id = (await accept(database, seller, 7, prefix="R"))[6]
        lost = next(i for i in await all_invoices(database) if i.id == lost_id)
        await platform.issue(platform_invoice(lost, seller))
        await database.write(lambda c: c.execute(
            update(invoices).where(invoices.c.id == lost_id).values(status="issuing")))  # fmt: skip
        # Contradictions: issued there but rejected here; issued here under a number the
        # platform never gave.
        await database.write(lambda c: c.execute(
            update(invoices).where(invoices.c.id == ids[0]).values(status="rejected")))  # fmt: skip
        await database.write(lambda c: c.execute(
            update(invoices).where(invoices.c.id == ids[1]).values(
                invoice_number="99999999999999999999")))  # fmt: skip

        report = await reconcile(database, platform, since=utcnow() - timedelta(hours=1),
                                 clock=utcnow, grace=timedelta(0))  # fmt: skip
        assert report.settled == 1 and len(report.contradictions) == 2, report
        assert report.deviation == pytest.approx(2 / 7)
        after = {i.id: i for i in await all_invoices(database)}
        assert after[lost_id].status is Status.ISSUED and after[lost_id].invoice_number
        assert after[ids[0]].status is Status.ATTENTION
        assert after[ids[1]].status is Status.ATTENTION
        assert after[ids[1]].error_code == "reconcile_contradiction"
    finally:
        await platform.aclose()
