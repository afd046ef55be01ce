"""Webhooks as an attacker with a seller key would aim them (issue 21): at loopback listeners
this test starts, with the private-network setting off and then on; through a redirect; through
a name that resolves to loopback; with a rotated secret. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import text

from kaipiao.clock import utcnow
from kaipiao.engine.webhooks import WebhookSender
from kaipiao.platform.outbound import CheckingResolver, OutboundPolicy, parse_networks
from kaipiao.services import cancellation, intake, keys
from kaipiao.services.invoice_request import InvoiceCreate
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from tests.factories import SELLER_TAX_ID, invoice_body

OFF = OutboundPolicy()
ON = OutboundPolicy(parse_networks("127.0.0.0/8"))


class Listener:
    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []
        self.port = 0
        self.answer: Callable[[], web.Response] = lambda: web.Response(status=204)

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def listeners() -> AsyncIterator[list[Listener]]:
    made: list[Listener] = []
    runners = []
    for _ in range(2):
        box = Listener()

        async def hook(request: web.Request, box: Listener = box) -> web.Response:
            box.hits.append({"headers": dict(request.headers), "body": await request.read()})
            return box.answer()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        made.append(box)
        runners.append(runner)
    yield made
    for runner in runners:
        await runner.cleanup()


async def _queue(db: Database, url: str, order: str = "SSRF-1") -> Any:
    """A seller, an invoice with `url` as its callback (stored as a name would be: the
    submission check is the API's), cancelled so a delivery is due."""
    new = await add_seller(db, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())
    body = InvoiceCreate.model_validate({**invoice_body(order), "callback_url": url})
    accepted = await intake.submit_invoice(
        db, new.seller, body.to_domain(), body.canonical(), now=utcnow()
    )
    await cancellation.cancel_invoice(db, new.seller, accepted.document["id"], now=utcnow())
    return new


async def _deliver(db: Database, policy: OutboundPolicy, session: Any = None) -> Any:
    sender = WebhookSender(db, utcnow, policy=policy)
    async with session or policy.session(5.0) as client:
        await sender.send_due(client)
    return await db.read(lambda c: c.execute(text(
        "SELECT status, attempts, last_status, last_error FROM webhook_deliveries")).one())  # fmt: skip


async def test_loopback_is_not_called_with_the_setting_off(
    database: Database, listeners: list[Listener]
) -> None:
    await _queue(database, listeners[0].url())
    state = await _deliver(database, OFF)
    assert listeners[0].hits == []
    assert (state.status, state.last_error) == ("failed", "destination_not_allowed")


async def test_loopback_is_called_with_the_setting_on(
    database: Database, listeners: list[Listener]
) -> None:
    await _queue(database, listeners[0].url())
    state = await _deliver(database, ON)
    assert len(listeners[0].hits) == 1 and state.status == "delivered"


async def test_ipv4_mapped_loopback_is_refused(database: Database) -> None:
    await _queue(database, "http://[::ffff:127.0.0.1]:9/hook")
    state = await _deliver(database, OFF)
    assert (state.status, state.last_error) == ("failed", "destination_not_allowed")


async def test_a_redirect_is_not_followed_and_signatures_do_not_travel(
    database: Database, listeners: list[Listener]
) -> None:
    first, second = listeners
    first.answer = lambda: web.Response(status=307, headers={"Location": second.url()})
    await _queue(database, first.url())
    state = await _deliver(database, ON)
    assert len(first.hits) == 1 and second.hits == []
    assert (state.status, state.last_status, state.last_error) == (
        "pending",
        307,
        "redirect_not_followed",
    )


async def test_the_seller_sees_coarse_reasons_never_raw_errors(database: Database) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await _queue(database, f"http://127.0.0.1:{port}/hook")
    state = await _deliver(database, ON)
    assert state.last_error == "connection_failed" and state.last_status is None


class _Fixed(AbstractResolver):
    """A resolver that answers every name with one address (here: loopback)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [{"hostname": host, "host": self.address, "port": port, "family": family,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]  # fmt: skip

    async def close(self) -> None:
        return None


def _session(policy: OutboundPolicy, resolver: AbstractResolver) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(resolver=CheckingResolver(policy, resolver),
                                     use_dns_cache=False)  # fmt: skip
    return aiohttp.ClientSession(connector=connector, trust_env=False)


@pytest.mark.parametrize("allowed", [False, True])
async def test_a_name_is_checked_after_resolution_and_the_checked_address_is_called(
    database: Database, listeners: list[Listener], allowed: bool
) -> None:
    # "hooks.example" resolves to 127.0.0.1 (a rebinding answer): refused unless allowed, and
    # when allowed, the connection goes to the very address that was checked.
    policy = ON if allowed else OFF
    resolver = _Fixed("127.0.0.1")
    await _queue(database, listeners[0].url(host="hooks.example"))
    state = await _deliver(database, policy, _session(policy, resolver))
    assert resolver.asked == ["hooks.example"]
    if allowed:
        assert state.status == "delivered" and len(listeners[0].hits) == 1
    else:
        assert (state.status, state.last_error) == ("failed", "destination_not_allowed")
        assert listeners[0].hits == []


def _valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check from docs/security.md: any v1 signature with our secret."""
    signed = headers["Kaipiao-Timestamp"].encode() + b"." + body
    expected = "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    offered = [part.strip() for part in headers["Kaipiao-Signature"].split(",")]
    return any(hmac.compare_digest(expected, sig) for sig in offered)


async def test_a_rotated_secret_signs_alongside_the_old_one_during_the_overlap(
    database: Database, listeners: list[Listener]
) -> None:
    new = await _queue(database, listeners[0].url())
    old_secret = new.seller.webhook_secret
    rotated = await keys.rotate_webhook_secret(
        database, new.seller.id, now=utcnow(), overlap=timedelta(hours=1)
    )
    await _deliver(database, ON)
    hit = listeners[0].hits[0]
    assert _valid(old_secret, hit["headers"], hit["body"])
    assert _valid(rotated.webhook_secret, hit["headers"], hit["body"])
    assert not _valid("whsec_wrong", hit["headers"], hit["body"])
    # After the overlap only the new secret signs.
    await keys.rotate_webhook_secret(database, new.seller.id, now=utcnow(), overlap=timedelta(0))
    await cancellation_again(database, new, listeners[0])
    hit = listeners[0].hits[-1]
    assert hit["headers"]["Kaipiao-Signature"].count("v1=") == 1


async def cancellation_again(db: Database, new: Any, listener: Listener) -> None:
    body = InvoiceCreate.model_validate({**invoice_body("SSRF-2"), "callback_url": listener.url()})
    accepted = await intake.submit_invoice(
        db, new.seller, body.to_domain(), body.canonical(), now=utcnow()
    )
    await cancellation.cancel_invoice(db, new.seller, accepted.document["id"], now=utcnow())
    sender = WebhookSender(db, utcnow, policy=ON)
    async with ON.session(5.0) as client:
        await sender.send_due(client)
