"""Delivering the webhook outbox: signed POSTs, retried with backoff for days, state recorded.

Each delivery is POSTed to the invoice's `callback_url` with
`Kaipiao-Event-Id` (the same on every retry: receivers deduplicate on it),
`Kaipiao-Timestamp` (Unix seconds) and
`Kaipiao-Signature: v1=<hex HMAC-SHA256 over "<timestamp>.<body>" with the seller's secret>`;
while a rotated secret's overlap lasts, a second `v1=` signature (with the previous secret)
follows, comma-separated: a receiver accepts the delivery if any of them matches its secret.

Every request goes through the outbound policy (`kaipiao.platform.outbound`): the destination is
checked before connecting and after resolution, and redirects are not followed (a 3xx is a
failed attempt). A 2xx answer delivers it. Anything else is retried with full-jitter backoff
(10 s doubling to 30 min) until `give_up_after` (72 h) has passed since the change, then marked
failed; a refused destination is failed at once. The seller sees (`GET
/v1/invoices/{id}/webhooks`) each attempt's HTTP status or a coarse reason (`REASONS`), never
the raw connection error, which would let a seller map the network; that goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from kaipiao.engine.retry import RetryPolicy
from kaipiao.platform.outbound import OutboundPolicy, OutboundRefused
from kaipiao.store import webhooks as outbox
from kaipiao.store.database import Database

log = logging.getLogger("kaipiao.webhooks")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under the seller's secret."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signatures(secrets: tuple[str, ...], timestamp: int, body: bytes) -> str:
    """The `Kaipiao-Signature` value: one `v1=` signature per live secret, comma-separated."""
    return ", ".join(signature(secret, timestamp, body) for secret in secrets)


REASONS = {
    "destination_not_allowed": "the destination is not allowed",
    "invalid_url": "the callback URL is not valid",
    "scheme_not_allowed": "the callback URL is not http or https",
    "redirect_not_followed": "the receiver answered with a redirect, which is not followed",
    "timeout": "the receiver did not answer in time",
    "connection_failed": "could not connect to the receiver",
    "tls_failed": "the TLS handshake with the receiver failed",
    "http_error": "the receiver's answer was not 2xx",
}
"""The coarse reasons a seller may see for a failed attempt (`last_error`)."""


BACKOFF = RetryPolicy(base_s=10.0, cap_s=1800.0)
"""Full jitter, as for platform calls: 10 s doubling to 30 minutes."""


@dataclass
class WebhookConfig:
    batch: int = 50
    concurrency: int = 20
    timeout_s: float = 10.0
    backoff: RetryPolicy = BACKOFF
    give_up_after: timedelta = timedelta(hours=72)
    idle_poll_s: float = 1.0
    lease: timedelta = timedelta(seconds=60)


class WebhookSender:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        config: WebhookConfig | None = None,
        rng: random.Random | None = None,
        policy: OutboundPolicy | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config or WebhookConfig()
        self.rng = rng or random.Random()
        self.policy = policy or OutboundPolicy()

    async def run(self, stop: asyncio.Event) -> None:
        async with self.policy.session(self.config.timeout_s) as session:
            while not stop.is_set():
                try:
                    sent = await self.send_due(session)
                except Exception:
                    log.exception("webhook round failed")
                    sent = 0
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.idle_poll_s)

    async def send_due(self, session: aiohttp.ClientSession) -> int:
        now = self.clock()
        due = await self.db.write(
            lambda conn: outbox.claim_due(conn, now, self.config.batch, self.config.lease)
        )
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(delivery: outbox.Delivery) -> None:
            async with gate:
                await self._deliver(session, delivery)

        await asyncio.gather(*(one(d) for d in due))
        return len(due)

    async def _deliver(self, session: aiohttp.ClientSession, delivery: outbox.Delivery) -> None:
        status, error = await self._post(session, delivery)
        delivered = error is None
        now = self.clock()
        next_at: datetime | None = None
        final = error in ("destination_not_allowed", "invalid_url", "scheme_not_allowed")
        if not delivered:
            if not final and now - delivery.created_at < self.config.give_up_after:
                wait = self.config.backoff.backoff_s(delivery.attempts + 1, self.rng)
                next_at = now + timedelta(seconds=wait)
            else:
                log.warning("webhook %s given up after %d attempts", delivery.event_id,
                            delivery.attempts + 1)  # fmt: skip
        await self.db.write(
            lambda conn: outbox.record(
                conn, delivery.id, now=now, delivered=delivered, status_code=status,
                error=error, next_attempt_at=next_at,
            )
        )  # fmt: skip

    async def _post(
        self, session: aiohttp.ClientSession, delivery: outbox.Delivery
    ) -> tuple[int | None, str | None]:
        """One attempt: (the receiver's HTTP status, None) if delivered, else (status or None,
        a coarse reason from REASONS)."""
        body = delivery.body.encode()
        stamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "Kaipiao-Event-Id": delivery.event_id,
            "Kaipiao-Timestamp": str(stamp),
            "Kaipiao-Signature": signatures(delivery.secrets, stamp, body),
        }
        try:
            target = self.policy.check_target(delivery.url)
            async with session.post(
                target.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                await answer.read()
                status = answer.status
        except OutboundRefused as exc:
            return None, exc.reason
        except TimeoutError:
            return None, "timeout"
        except aiohttp.ClientSSLError as exc:
            log.info("webhook %s: %s", delivery.event_id, exc)
            return None, "tls_failed"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.info("webhook %s: %s: %s", delivery.event_id, type(exc).__name__, exc)
            return None, "connection_failed"
        if 200 <= status < 300:
            return status, None
        return status, "redirect_not_followed" if 300 <= status < 400 else "http_error"
