"""The operator's status on SQLite and PostgreSQL: counts, affected sellers, incident level."""

from __future__ import annotations

from sqlalchemy import update

from kaipiao.clock import utcnow
from kaipiao.services.sellers import add_admin_key
from kaipiao.store import overview
from kaipiao.store.tables import invoices
from tests.factories import invoice_body
from tests.integration.conftest import Api


async def test_ops_status_names_the_incident_level_for_operators_only(api: Api) -> None:
    first = (await api.post(invoice_body("ST-1"))).json()["id"]
    await api.post(invoice_body("ST-2"))
    await api.post(invoice_body("ST-3"), who=api.b)
    admin = await add_admin_key(api.database, now=utcnow())
    calm = await api.client.get("/v1/ops/status", headers={"Authorization": f"Bearer {admin}"})
    assert calm.status_code == 200
    body = calm.json()
    assert body["invoices"] == {"queued": 3}
    assert body["sellers"] == {"active": 2, "affected": 0}
    assert body["incident"]["level"] == 0

    await api.database.write(lambda c: c.execute(
        update(invoices).where(invoices.c.id == first).values(status="attention")))  # fmt: skip
    hot = (await api.client.get("/v1/ops/status",
                                headers={"Authorization": f"Bearer {admin}"})).json()  # fmt: skip
    assert hot["sellers"] == {"active": 2, "affected": 1}
    assert hot["incident"] == {"level": 3, "response": "respond within 30 minutes"}

    refused = await api.client.get("/v1/ops/status", headers=api.auth())
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


async def test_heartbeats_are_kept_per_worker_and_forgotten(api: Api) -> None:
    now = utcnow()
    state = {"breakers": {"31": "open"}, "limits": {"31": 7}, "in_flight": 3}
    await api.database.write(lambda c: overview.beat(c, "w-1", now, state))
    await api.database.write(lambda c: overview.beat(c, "w-1", now, state))  # replaces
    seen = await api.database.read(lambda c: overview.workers_seen(c, now))
    assert [(owner, report) for owner, _, report in seen] == [("w-1", state)]
    await api.database.write(lambda c: overview.forget_worker(c, "w-1"))
    assert await api.database.read(lambda c: overview.workers_seen(c, now)) == []


async def test_intake_history_and_the_forecast_against_quotas(api: Api) -> None:
    from datetime import timedelta

    from kaipiao.services import forecast, status
    from kaipiao.store.tables import sellers

    for i in range(3):
        await api.post(invoice_body(f"FC-{i}"))
    await api.post(invoice_body("FC-B"), who=api.b)
    rows = await api.database.read(lambda c: overview.intake_by_hour(c, "inv_"))
    hour = utcnow().strftime("%Y-%m-%d %H")
    assert sorted((r[1], r[2], r[3]) for r in rows) == [("11", hour, 1), ("31", hour, 3)]
    # No quota anywhere: nothing to forecast against.
    later = utcnow() + timedelta(hours=2)  # this hour and the next become full hours of history
    assert await forecast.exhaustion(api.database, later) == []
    await api.database.write(lambda c: c.execute(update(sellers).values(quota_per_s=0.001)))
    found = {(e.scope, e.key): e for e in await forecast.exhaustion(api.database, later)}
    seller = found["seller", api.a.seller.id]
    assert seller.limit_per_h == 3.6 and seller.current_per_h == 0 and seller.model == "line"
    assert ("province", "31") in found and ("backlog-slo", "all") in found
    assert await forecast.recent_intake(api.database, later) == [4.0, 0.0]
    snap = await status.snapshot(api.database, later)
    assert any(line.startswith("forecast:") for line in status.render(snap))
    assert any(line.startswith("warnings:   none active") for line in status.render(snap))
