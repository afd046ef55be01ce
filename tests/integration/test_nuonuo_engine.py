"""The engine issuing, polling and reversing through `kaipiao.platform.nuonuo` against the
sandbox's Nuonuo-compatible front (a real process over HTTP), on SQLite and PostgreSQL.

Issuance is asynchronous here (the front answers a provider serial; the invoice is issued 0.3 s
later), so every invoice goes through `Pending` and is finished by polling `queryInvoiceResult`.
Under each fault profile the platform's dedup is off: a second submission of an order number
would become a second invoice, so zero duplicates in the ground truth means kaipiao never sent one
twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
from aiohttp import web

from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Kind
from kaipiao.engine.worker import Worker
from kaipiao.platform.http import HttpSettings
from kaipiao.platform.nuonuo import NuonuoAccount, NuonuoConfig, NuonuoPlatform
from kaipiao.platform.outcomes import Unavailable
from kaipiao.services.reversal import reverse_invoice
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from tests.engine_support import FAST, accept, all_invoices, statuses
from tests.factories import SELLER_TAX_ID, platform_invoice
from tests.integration.conftest import NUONUO_APP_KEY, NUONUO_APP_SECRET
from tests.integration.test_engine_sandbox import (
    put_faults,
    run_for,
    run_until_terminal,
    sandbox_stats,
)
from tests.processes import Running

ASYNC = {"async_issue": True, "async_delay_s": 0.3}
FAULTS: dict[str, tuple[dict[str, Any], float, str]] = {
    # (knobs while it bites, for how long, the sandbox counter that proves it bit)
    "ambiguous": ({"ambiguous_rate": 0.3}, 2.0, "nuonuo.issue:ambiguous_drop"),
    "degraded": (
        {
            "profile": "degraded",
            "latency": {"kind": "pareto", "min_ms": 150, "alpha": 1.5, "cap_ms": 3000},
        },
        3.0,
        "nuonuo.issue:failure_",
    ),
    # A refused connection never reaches the sandbox: the worker's own count shows it.
    "outage": ({"outage": "refuse", "outage_for_s": 2.0}, 2.5, "worker:unavailable"),
}


def nuonuo(sandbox: Running, secret: str = NUONUO_APP_SECRET) -> NuonuoPlatform:
    account = NuonuoAccount(NUONUO_APP_KEY, secret, "token-1", SELLER_TAX_ID)
    config = NuonuoConfig(url=f"{sandbox.url}/open/v1/services", poll_after_s=0.2)
    http = HttpSettings(read_timeout_s=1.0, connect_timeout_s=0.5, pool_timeout_s=2.0)
    return NuonuoPlatform(account, config, http)


@pytest.mark.slow
@pytest.mark.parametrize("profile", list(FAULTS))
async def test_issued_once_through_nuonuo_under(
    profile: str, database: Database, sandbox: Running
) -> None:
    knobs, bite_s, evidence = FAULTS[profile]
    seller = await add_seller(database, name="诺", tax_id=SELLER_TAX_ID, now=utcnow(), region="31")
    await put_faults(sandbox, {**knobs, **ASYNC, "dedup": False})
    count = 40
    await accept(database, seller.seller, count, prefix=profile)
    platform = nuonuo(sandbox)
    # settle_s covers the slowest answer (3 s) plus the asynchronous delay.
    config = replace(FAST, lease_s=4.0, renew_every_s=1.0, settle_s=3.5)
    worker = Worker(database, platform, config, seed=21)
    await run_for(worker, bite_s)
    during = await sandbox_stats(sandbox)
    await put_faults(sandbox, {"profile": "ideal", **ASYNC, "dedup": False,
                               "latency": {"kind": "fixed", "mean_ms": 20}})  # fmt: skip
    try:
        await run_until_terminal(Worker(database, platform, config, seed=22), database, 60)
    finally:
        await platform.aclose()
    seen = worker.stats if evidence.startswith("worker:") else during["calls"]
    marker = evidence.removeprefix("worker:")
    assert any(marker in key and n > 0 for key, n in seen.items()), (profile, seen)
    items = await all_invoices(database)
    assert statuses(items) == {"issued": count}, statuses(items)
    stats = await sandbox_stats(sandbox)
    assert stats["duplicates"]["by_serial"] == 0, stats
    assert stats["blue_issued"] == count
    # Every submission answers Pending, so each invoice was finished by polling: at least one
    # query each (the front now counts queries by what they found, issued included).
    polled = sum(n for key, n in stats["calls"].items() if key.startswith("nuonuo.query:"))
    assert polled >= count, stats["calls"]
    # What kaipiao stored is what the provider reports, number for number.
    platform = nuonuo(sandbox)
    try:
        for item in items:
            found = await platform.query(item.serial_no, seller_tax_id=SELLER_TAX_ID)
            assert getattr(found, "invoice_number", None) == item.invoice_number, found
    finally:
        await platform.aclose()


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["ideal", "ambiguous"])
async def test_reversal_through_nuonuo_files_the_form_then_issues_red(
    profile: str, database: Database, sandbox: Running
) -> None:
    seller = await add_seller(database, name="诺", tax_id=SELLER_TAX_ID, now=utcnow(), region="31")
    await put_faults(sandbox, ASYNC)
    count = 6
    ids = await accept(database, seller.seller, count, prefix="R")
    platform = nuonuo(sandbox)
    config = replace(FAST, settle_s=1.0)
    try:
        await run_until_terminal(Worker(database, platform, config, seed=23), database, 30)
        # Reverse with answers lost on the way (dedup off: a red sent twice would be two).
        if profile == "ambiguous":
            await put_faults(sandbox, {"ambiguous_rate": 0.4, "dedup": False})
        for invoice_id in ids:
            await reverse_invoice(database, seller.seller, invoice_id, "sales_return", now=utcnow())
        await run_until_terminal(Worker(database, platform, config, seed=24), database, 60)
    finally:
        await platform.aclose()
    items = await all_invoices(database)
    assert statuses([i for i in items if i.kind is Kind.BLUE]) == {"reversed": count}
    reds = [i for i in items if i.kind is Kind.RED]
    assert statuses(reds) == {"issued": count}
    assert all(r.invoice_number and r.total < 0 for r in reds)
    stats = await sandbox_stats(sandbox)
    assert stats["red_issued"] == count and stats["duplicates"]["by_serial"] == 0, stats
    assert stats["calls"]["nuonuo.red_confirm:pending"] >= count
    if profile == "ambiguous":
        lost = sum(n for k, n in stats["calls"].items() if ":ambiguous_drop" in k)
        assert lost > 0, stats["calls"]


async def test_a_bad_signature_keeps_the_invoice_waiting(sandbox: Running) -> None:
    platform = nuonuo(sandbox, secret="not-the-secret")
    try:
        outcome = await platform.issue(platform_invoice("S" * 20, region=None))
    finally:
        await platform.aclose()
    assert isinstance(outcome, Unavailable)
    assert "refused the credentials (sign_invalid)" in outcome.reason
    stats = await sandbox_stats(sandbox)
    assert stats["calls"]["nuonuo.requestBillingNew:refused"] == 1
    assert stats["blue_issued"] == 0


async def test_the_front_calls_back_when_the_invoice_is_final(sandbox: Running) -> None:
    received: list[dict[str, Any]] = []

    async def callback(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/cb", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await put_faults(sandbox, ASYNC)
    platform = nuonuo(sandbox)
    platform.config = replace(platform.config, callback_url=f"http://127.0.0.1:{port}/cb")
    try:
        invoice = platform_invoice("C" * 20, region=None)
        await platform.issue(invoice)
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.1)
    finally:
        await platform.aclose()
        await runner.cleanup()
    assert received and received[0]["orderNo"] == "C" * 20 and received[0]["status"] == "2"


def test_unknown_methods_and_bad_bodies_are_refused_in_the_envelope(sandbox: Running) -> None:
    platform = nuonuo(sandbox)
    params, headers, data = platform.signed("nuonuo.OpeMplatform.noSuchThing", {"a": 1})
    answer = httpx.post(f"{sandbox.url}/open/v1/services", params=params, headers=headers,
                        content=data).json()  # fmt: skip
    assert answer["code"] == "method_unknown"
    params, headers, data = platform.signed("nuonuo.OpeMplatform.requestBillingNew",
                                            {"order": {"orderNo": "X"}})  # fmt: skip
    answer = httpx.post(f"{sandbox.url}/open/v1/services", params=params, headers=headers,
                        content=data).json()  # fmt: skip
    assert answer["code"] == "invalid_request" and "invoiceDetail" in answer["describe"]


async def test_a_resubmitted_order_number_is_refused_as_duplicate_then_found(
    sandbox: Running,
) -> None:
    await put_faults(sandbox, {"profile": "ideal"})
    platform = nuonuo(sandbox)
    invoice = platform_invoice("D" * 20, region=None)
    try:
        first = await platform.issue(invoice)
        again = await platform.issue(invoice)
        found = await platform.query(invoice.serial_no, seller_tax_id=SELLER_TAX_ID)
    finally:
        await platform.aclose()
    assert type(first).__name__ == "Pending"
    # E9106: "submitted before" → Ambiguous, so the engine queries instead of failing it.
    assert type(again).__name__ == "Ambiguous" and "E9106" in again.reason  # type: ignore[union-attr]
    assert type(found).__name__ == "Issued"
    assert (await sandbox_stats(sandbox))["blue_issued"] == 1
