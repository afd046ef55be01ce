"""Idempotency keys and one-invoice-per-order, including under concurrent duplicates."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from kaipiao.clock import utcnow
from kaipiao.store import idempotency
from kaipiao.store.tables import idempotency_keys, invoices
from tests.factories import invoice_body
from tests.integration.conftest import Api


async def invoice_count(api: Api) -> int:
    return int(
        await api.database.read(
            lambda conn: conn.execute(select(func.count()).select_from(invoices)).scalar_one()
        )
    )


async def test_same_key_replays_the_stored_response(api: Api) -> None:
    body = invoice_body()
    first = await api.post(body, **{"Idempotency-Key": "k-1"})
    second = await api.post(body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert await invoice_count(api) == 1


async def test_same_key_other_body_is_refused(api: Api) -> None:
    await api.post(invoice_body("A-1"), **{"Idempotency-Key": "k-2"})
    reused = await api.post(invoice_body("A-2"), **{"Idempotency-Key": "k-2"})
    assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
    assert await invoice_count(api) == 1


async def test_keys_are_per_seller(api: Api) -> None:
    mine = await api.post(invoice_body("P-1"), **{"Idempotency-Key": "shared"})
    theirs = await api.post(invoice_body("P-2"), who=api.b, **{"Idempotency-Key": "shared"})
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


async def test_in_progress_key_answers_409_until_the_claim_lapses(api: Api) -> None:
    body = invoice_body()
    from kaipiao.services.intake import request_hash
    from kaipiao.services.invoice_request import InvoiceCreate

    digest = request_hash(InvoiceCreate.model_validate(body).model_dump_json().encode())
    now = utcnow()
    claim = await api.database.write(
        lambda conn: idempotency.claim(
            conn, api.a.seller.id, "k-busy", digest, now=now - idempotency.CLAIM_LOCK / 2,
            ttl=timedelta(days=7),
        )
    )  # fmt: skip
    assert isinstance(claim, idempotency.Claimed)
    busy = await api.post(body, **{"Idempotency-Key": "k-busy"})
    assert busy.status_code == 409 and busy.json()["code"] == "request_in_progress"
    # The holder died: once its lock lapses, a retry takes the claim over and succeeds.
    await api.database.write(
        lambda conn: conn.execute(
            idempotency_keys.update().values(locked_until=now - timedelta(seconds=1))
        )
    )
    retried = await api.post(body, **{"Idempotency-Key": "k-busy"})
    assert retried.status_code == 202


async def test_failed_request_releases_its_key(api: Api) -> None:
    bad = invoice_body(lines=[{"name": "x", "tax_code": "1", "quantity": "1", "unit_price": "1",
                               "tax_rate": "0.13"}])  # fmt: skip
    assert (await api.post(bad, **{"Idempotency-Key": "k-bad"})).status_code == 422
    await api.post(invoice_body("C-1"))
    conflict = await api.post({**invoice_body("C-1"), "remark": "x"}, **{"Idempotency-Key": "k-c"})
    assert conflict.status_code == 409
    retry = await api.post(invoice_body("C-2"), **{"Idempotency-Key": "k-c"})
    assert retry.status_code == 202


async def test_expired_keys_are_forgotten(api: Api) -> None:
    await api.post(invoice_body("E-1"), **{"Idempotency-Key": "k-old"})
    await api.database.write(
        lambda conn: conn.execute(idempotency_keys.update().values(expires_at=utcnow()))
    )
    fresh = await api.post(invoice_body("E-2"), **{"Idempotency-Key": "k-old"})
    assert fresh.status_code == 202 and fresh.json()["order_id"] == "E-2"

    def expire_and_purge(conn: Any) -> int:
        conn.execute(idempotency_keys.update().values(expires_at=utcnow() - timedelta(seconds=1)))
        return idempotency.purge_expired(conn, utcnow())

    assert await api.database.write(expire_and_purge) == 1


async def test_fifty_parallel_posts_of_one_order_make_one_invoice(api: Api) -> None:
    body = invoice_body("RUSH-1")
    responses = await asyncio.gather(*(api.post(body) for _ in range(50)))
    assert {r.status_code for r in responses} <= {200, 202}, [r.text for r in responses]
    assert sum(r.status_code == 202 for r in responses) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert await invoice_count(api) == 1


async def test_fifty_parallel_posts_with_one_key_make_one_invoice(api: Api) -> None:
    body = invoice_body("RUSH-2")
    responses = await asyncio.gather(
        *(api.post(body, **{"Idempotency-Key": "rush"}) for _ in range(50))
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {202, 409}, [r.text for r in responses]
    assert all(r.json()["code"] == "request_in_progress" for r in responses if r.status_code == 409)
    ids = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(ids) == 1
    assert await invoice_count(api) == 1
    replay = await api.post(body, **{"Idempotency-Key": "rush"})
    assert replay.status_code == 202 and replay.json()["id"] in ids
