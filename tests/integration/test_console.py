"""The console's use cases and its HTTP edge on SQLite and PostgreSQL: operators and sessions
(argon2id, one-time tokens, expiry, disabling), the search's ways in and its cursor, actions
recorded with the operator's name in the ledger, roles and CSRF on the pages, the sign-in limit.
The browser walk is tests/e2e/test_console_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Status
from kaipiao.services import console, operators, sellers
from kaipiao.services.console import Filters
from kaipiao.services.errors import Conflict, ServiceError
from kaipiao.services.operators import SignInLimiter
from kaipiao.store.events import events_for
from kaipiao.store.tables import invoices
from tests.factories import invoice_body
from tests.integration.conftest import Api

HOUR = timedelta(hours=1)
PASSWORD = "a long enough password"


async def test_operators_sign_in_once_by_token_or_by_password(api: Api) -> None:
    db, now = api.database, utcnow()
    viewer = await operators.add_operator(db, name="v1", role="viewer", now=now)
    assert viewer.sign_in_token is not None
    await operators.add_operator(db, name="ops", role="operator", now=now, password=PASSWORD)
    with pytest.raises(Conflict):
        await operators.add_operator(db, name="ops", role="viewer", now=now)
    with pytest.raises(ServiceError):
        await operators.add_operator(db, name="x", role="root", now=now)
    with pytest.raises(ServiceError):
        await operators.add_operator(db, name="y", role="viewer", now=now, password="short")

    session = await operators.sign_in(db, "v1", viewer.sign_in_token, now=now, lifetime=HOUR)
    assert session is not None and session.operator.role == "viewer"
    # The token is used up; a wrong secret or an unknown name is refused alike.
    assert await operators.sign_in(db, "v1", viewer.sign_in_token, now=now, lifetime=HOUR) is None
    assert await operators.sign_in(db, "ops", "wrong password!", now=now, lifetime=HOUR) is None
    assert await operators.sign_in(db, "nobody", PASSWORD, now=now, lifetime=HOUR) is None
    by_password = await operators.sign_in(db, "ops", PASSWORD, now=now, lifetime=HOUR)
    assert by_password is not None

    found = await operators.session_for(db, session.cookie, now=now + timedelta(minutes=59))
    assert found is not None and found.csrf == session.csrf
    assert await operators.session_for(db, session.cookie, now=now + HOUR) is None  # expired
    await operators.sign_out(db, by_password.cookie)
    assert await operators.session_for(db, by_password.cookie, now=now) is None
    stored = await operators.list_operators(db)
    assert all(o.password_hash is None or o.password_hash.startswith("$argon2id$") for o in stored)


async def test_a_disabled_operator_loses_their_sessions_at_once(api: Api) -> None:
    db, now = api.database, utcnow()
    await operators.add_operator(db, name="gone", role="admin", now=now, password=PASSWORD)
    session = await operators.sign_in(db, "gone", PASSWORD, now=now, lifetime=HOUR)
    assert session is not None
    await operators.disable(db, "gone", now=now)
    assert await operators.session_for(db, session.cookie, now=now) is None
    assert await operators.sign_in(db, "gone", PASSWORD, now=now, lifetime=HOUR) is None


def test_sign_in_attempts_are_limited_per_name_and_address() -> None:
    limiter = SignInLimiter(per_minute=3)
    assert [limiter.allow("ops", "10.0.0.1", 100.0) for _ in range(4)] == [True] * 3 + [False]
    assert limiter.allow("ops", "10.0.0.2", 100.0)  # another address
    assert limiter.allow("ops", "10.0.0.1", 160.5)  # a minute later


async def test_search_finds_by_every_way_in_and_pages_with_a_cursor(api: Api) -> None:
    made = [(await api.post(invoice_body(f"S-{n}"))).json() for n in range(5)]
    other = (await api.post(invoice_body("S-B", buyer={"name": "北京乙方", "tax_id":
                                                       "91110000600037341L"}), who=api.b)).json()  # fmt: skip
    db = api.database
    for query, expected in [("S-3", made[3]["id"]), (made[1]["serial_no"], made[1]["id"]),
                            (made[2]["id"], made[2]["id"]), ("北京乙方", other["id"]),
                            ("91110000600037341L", other["id"])]:  # fmt: skip
        found, cursor = await console.search_invoices(db, Filters(query=query))
        assert [i.id for i in found] == [expected] and cursor is None, query
    await db.write(lambda c: c.execute(update(invoices).where(invoices.c.id == made[0]["id"])
                                       .values(invoice_number="26310000000000000042")))  # fmt: skip
    found, _ = await console.search_invoices(db, Filters(query="26310000000000000042"))
    assert [i.id for i in found] == [made[0]["id"]]

    pages, cursor = [], None
    while True:
        page, cursor = await console.search_invoices(db, Filters(cursor=cursor), limit=2)
        pages.append([i.id for i in page])
        if cursor is None:
            break
    everything = [i for p in pages for i in p]
    assert everything == sorted(everything, reverse=True) and len(everything) == 6
    assert [len(p) for p in pages] == [2, 2, 2]
    mine, _ = await console.search_invoices(db, Filters(seller_id=api.b.seller.id))
    assert [i.id for i in mine] == [other["id"]]
    tomorrow = utcnow() + timedelta(days=1)
    assert (await console.search_invoices(db, Filters(since=tomorrow)))[0] == []
    assert len((await console.search_invoices(db, Filters(until=tomorrow)))[0]) == 6
    with pytest.raises(ServiceError):
        await console.search_invoices(db, Filters(cursor="nope"))


async def test_actions_are_the_clis_and_the_ledger_names_the_operator(api: Api) -> None:
    db = api.database
    ids = [(await api.post(invoice_body(f"A-{n}"))).json()["id"] for n in range(3)]
    await db.write(lambda c: c.execute(update(invoices).where(invoices.c.id.in_(ids[:2]))
                                       .values(status="attention")))  # fmt: skip
    result = await console.act_on_many(db, "requeue", ids, by=console.actor("ops"),
                                       now=utcnow(), note="adopt it")  # fmt: skip
    assert result.done == ids[:2]
    assert [i for i, _ in result.failed] == [ids[2]]  # queued, not in attention
    cancelled = await console.act(db, "cancel", ids[2], by=console.actor("ops"), now=utcnow())
    assert cancelled.status is Status.CANCELLED
    events = await db.read(lambda c: events_for(c, ids[0]))
    requeued = [e for e in events if e["type"] == "requeued"]
    assert len(requeued) == 1 and '"by":"console:ops"' in requeued[0]["payload"]
    assert '"note":"adopt it"' in requeued[0]["payload"]
    assert '"by"' not in events[0]["payload"]  # the acceptance was not the operator's
    audit = await console.operator_actions(db, name="ops")
    assert sorted(e["invoice_id"] for e in audit) == sorted([ids[0], ids[1], ids[2]])
    assert await console.operator_actions(db, name="someone-else") == []
    with pytest.raises(ServiceError):
        await console.act(db, "reverse", ids[0], by="console:ops", now=utcnow(), reason="nah")


async def sign_in(client: httpx.AsyncClient, name: str, secret: str) -> httpx.Response:
    """The sign-in form's post, with the token its page set (login CSRF)."""
    client.cookies.clear()
    form = await client.get("/console/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    return await client.post(
        "/console/sign-in", data={"name": name, "secret": secret, "csrf": token.group(1)}
    )


def jar(cookie: str) -> dict[str, str]:
    return {"Cookie": f"kaipiao_console={cookie}"}


async def _signed_in(api: Api, name: str, role: str) -> tuple[httpx.AsyncClient, str]:
    await operators.add_operator(api.database, name=name, role=role, now=utcnow(),
                                 password=PASSWORD)  # fmt: skip
    client = api.client
    answer = await sign_in(client, name, PASSWORD)
    assert answer.status_code == 303, answer.text
    cookie = answer.cookies["kaipiao_console"]
    client.cookies.clear()  # each request below names its session itself
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert "samesite=strict" in answer.headers["set-cookie"].lower()
    page = await client.get("/console/attention", headers=jar(cookie))
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client, cookie + "|" + csrf.group(1)


async def test_pages_check_the_role_and_the_csrf_token(api: Api) -> None:
    invoice_id = (await api.post(invoice_body("P-1"))).json()["id"]
    await api.database.write(lambda c: c.execute(update(invoices).where(
        invoices.c.id == invoice_id).values(status="attention")))  # fmt: skip
    client = api.client
    assert (await client.get("/console")).status_code == 303  # not signed in
    _, viewer = await _signed_in(api, "v", "viewer")
    _, ops = await _signed_in(api, "o", "operator")
    for who, allowed in [(viewer, False), (ops, True)]:
        cookie, csrf = who.split("|")
        headers = jar(cookie)
        for path in ("/console", "/console/invoices?q=P-1", f"/console/invoices/{invoice_id}",
                     "/console/attention", "/console/sellers", "/console/audit"):  # fmt: skip
            page = await client.get(path, headers=headers)
            assert page.status_code == 200, (path, page.text)
            assert "default-src 'none'" in page.headers["content-security-policy"]
        form = {"csrf": csrf, "action": "requeue", "ids": invoice_id, "note": "n"}
        confirm = await client.post("/console/confirm", data=form, headers=headers)
        assert confirm.status_code == (200 if allowed else 403)
        no_token = await client.post("/console/act", data={**form, "csrf": ""}, headers=headers)
        assert no_token.status_code == 403
        seller_add = await client.post("/console/sellers", data={"csrf": csrf}, headers=headers)
        assert seller_add.status_code == 403  # admins only
    cookie, csrf = ops.split("|")
    done = await client.post("/console/act", headers=jar(cookie),
                             data={"csrf": csrf, "action": "requeue", "ids": invoice_id})  # fmt: skip
    assert done.status_code == 303
    # The API's errors stay problem+json; the console's are pages.
    assert (await client.get("/v1/invoices/inv_x")).headers["content-type"].startswith(
        "application/problem+json")  # fmt: skip
    missing = await client.get("/console/invoices/inv_x", headers=jar(cookie))
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")


async def test_an_admin_manages_sellers_keys_through_the_key_services(api: Api) -> None:
    client, who = await _signed_in(api, "root", "admin")
    cookie, csrf = who.split("|")
    headers = jar(cookie)
    seller = api.a.seller.id
    rotated = await client.post(f"/console/sellers/{seller}/rotate", data={"csrf": csrf},
                                headers=headers)  # fmt: skip
    key = re.search(r'id="new-key">([^<]+)<', rotated.text)
    assert rotated.status_code == 200 and key is not None
    listed = await client.get("/console/sellers", headers=headers)
    assert key.group(1) not in listed.text  # shown once
    revoked = await client.post(f"/console/sellers/{seller}/revoke", data={"csrf": csrf},
                                headers=headers)  # fmt: skip
    assert revoked.status_code == 200
    used = await client.get("/v1/invoices", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert used.status_code == 401
    limits = await client.post(
        f"/console/sellers/{seller}/limits",
        headers=headers,
        data={"csrf": csrf, "quota": "12.5", "networks": "10.0.0.0/8"},
    )
    assert limits.status_code == 200 and "10.0.0.0/8" in limits.text
    bad = await client.post(
        f"/console/sellers/{seller}/limits",
        headers=headers,
        data={"csrf": csrf, "quota": "-1", "networks": ""},
    )
    assert bad.status_code == 422 and "quota" in bad.text
    [changed] = [s for s in await sellers.list_sellers(api.database) if s.id == seller]
    assert changed.quota_per_s == 12.5 and changed.allowed_networks == ("10.0.0.0/8",)
    audit = await console.operator_actions(api.database, name="root")
    assert [e["type"] for e in audit] == [
        "seller_limits_set",
        "seller_keys_revoked",
        "seller_key_rotated",
    ]


async def test_the_session_cookie_is_secure_over_tls(api: Api) -> None:
    await operators.add_operator(api.database, name="tls", role="viewer", now=utcnow(),
                                 password=PASSWORD)  # fmt: skip
    transport = httpx.ASGITransport(app=api.app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://kaipiao.test") as tls:
        answer = await sign_in(tls, "tls", PASSWORD)
    assert answer.status_code == 303
    assert "secure" in answer.headers["set-cookie"].lower()


async def test_sign_in_needs_its_forms_token(api: Api) -> None:
    await operators.add_operator(api.database, name="csrf", role="viewer", now=utcnow(),
                                 password=PASSWORD)  # fmt: skip
    bare = await api.client.post("/console/sign-in", data={"name": "csrf", "secret": PASSWORD})
    assert bare.status_code == 403 and "kaipiao_console" not in bare.headers.get("set-cookie", "")
    assert (await sign_in(api.client, "csrf", PASSWORD)).status_code == 303


async def test_an_admin_adds_and_disables_operators(api: Api) -> None:
    client, who = await _signed_in(api, "boss", "admin")
    cookie, csrf = who.split("|")
    headers = jar(cookie)
    added = await client.post(
        "/console/operators",
        headers=headers,
        data={"csrf": csrf, "name": "newbie", "role": "viewer"},
    )
    token = re.search(r'id="new-token">([^<]+)<', added.text)
    assert added.status_code == 200 and token is not None
    assert (await sign_in(client, "newbie", token.group(1))).status_code == 303
    client.cookies.clear()
    disabled = await client.post(
        "/console/operators/newbie/disable", headers=headers, data={"csrf": csrf}
    )
    assert disabled.status_code == 200
    [newbie] = [o for o in await operators.list_operators(api.database) if o.name == "newbie"]
    assert newbie.disabled_at is not None
    _, viewer = await _signed_in(api, "peek", "viewer")
    assert (await client.get("/console/operators", headers=jar(viewer.split("|")[0]))
            ).status_code == 403  # fmt: skip
    audit = await console.operator_actions(api.database, name="boss")
    assert [e["type"] for e in audit] == ["operator_disabled", "operator_added"]


async def test_an_admin_action_and_its_ledger_event_commit_together(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event is appended inside the action's own transaction: when it cannot be written,
    the action is undone too (an action without its record would be a hole in the audit)."""
    db, now = api.database, utcnow()
    await operators.add_operator(db, name="kept", role="viewer", now=now, password=PASSWORD)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the ledger refused the event")

    monkeypatch.setattr("kaipiao.store.events.append_action", broken)
    with pytest.raises(RuntimeError):
        await operators.disable(db, "kept", now=now, by=console.actor("boss"))
    with pytest.raises(RuntimeError):
        await sellers.set_limits(db, api.a.seller.id, quota_per_s=3.0, allowed_networks=(),
                                 now=now, by=console.actor("boss"))  # fmt: skip
    [kept] = [o for o in await operators.list_operators(db) if o.name == "kept"]
    [seller] = [s for s in await sellers.list_sellers(db) if s.id == api.a.seller.id]
    assert kept.disabled_at is None and seller.quota_per_s != 3.0
    assert await console.operator_actions(db, name="boss") == []
