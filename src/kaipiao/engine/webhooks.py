"""Delivering the webhook outbox: signed POSTs, retried with backoff for days, state recorded.

Each delivery is POSTed to the invoice's `callback_url` with
`Kaipiao-Event-Id` (the same on every retry: receivers deduplicate on it),
`Kaipiao-Timestamp` (Unix seconds) and
`Kaipiao-Signature: v1=<hex HMAC-SHA256 over "<timestamp>.<body>" with the seller's secret>`.
A 2xx answer delivers it. Anything else is retried with full-jitter backoff (10 s doubling to
30 min) until `give_up_after` (72 h) has passed since the change, then marked failed; every
attempt's status code or error is kept (`GET /v1/invoices/{id}/webhooks`).
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
from kaipiao.store import webhooks as outbox
from kaipiao.store.database import Database

log = logging.getLogger("kaipiao.webhooks")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under the seller's secret."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


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
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config or WebhookConfig()
        self.rng = rng or random.Random()

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
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
        body = delivery.body.encode()
        stamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "Kaipiao-Event-Id": delivery.event_id,
            "Kaipiao-Timestamp": str(stamp),
            "Kaipiao-Signature": signature(delivery.secret, stamp, body),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with session.post(delivery.url, data=body, headers=headers) as answer:
                status = answer.status
                await answer.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        delivered = status is not None and 200 <= status < 300
        now = self.clock()
        next_at: datetime | None = None
        if not delivered:
            error = error or f"HTTP {status}"
            if now - delivery.created_at < self.config.give_up_after:
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
