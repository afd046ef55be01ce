"""Emailing issued invoices' files to their buyers: a small loop apart from the workers.

The outbox (`store/mail.py`) gets a row when an invoice's files are stored and its buyer has an
email address (and again on `POST /v1/invoices/{id}/delivery`). Each row is sent through the
seller's SMTP sender (`platform/smtp.py`: outbound policy, STARTTLS or TLS, the sealed
password opened only here). A 5xx reply is final: the delivery is `failed` with the server's
reply and is not retried. A 4xx reply, a refused connection or a timeout is retried with
full-jitter backoff (30 s doubling to 1 h) for `give_up_after` (3 days), then `failed`. A seller
without a sender, or whose password does not open, fails at once with that reason (re-send once
it is fixed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kaipiao.engine.retry import RetryPolicy
from kaipiao.platform import smtp
from kaipiao.platform.outbound import OutboundPolicy
from kaipiao.services.delivery import compose, smtp_account
from kaipiao.services.secrets import SecretBox, SecretError
from kaipiao.store import invoices as invoice_store
from kaipiao.store import mail as outbox
from kaipiao.store import sellers as seller_store
from kaipiao.store.database import Conn, Database
from kaipiao.store.filestore import FileStore, file_key
from kaipiao.store.records import StoredInvoice

log = logging.getLogger("kaipiao.mail")
BACKOFF = RetryPolicy(base_s=30.0, cap_s=3600.0)


@dataclass
class MailConfig:
    batch: int = 20
    concurrency: int = 4
    timeout_s: float = 30.0
    backoff: RetryPolicy = BACKOFF
    give_up_after: timedelta = timedelta(days=3)
    idle_poll_s: float = 1.0
    lease: timedelta = timedelta(seconds=300)


class MailDeliverer:
    def __init__(
        self,
        db: Database,
        store: FileStore,
        box: Callable[[], SecretBox],
        policy: OutboundPolicy,
        clock: Callable[[], datetime],
        *,
        environ: Mapping[str, str] | None = None,
        config: MailConfig | None = None,
        rng: random.Random | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.box = box
        self.policy = policy
        self.clock = clock
        self.environ = environ or {}
        self.config = config or MailConfig()
        self.rng = rng or random.Random()
        self.tls = tls  # None: the system's trusted CAs

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await self.send_due()
            except Exception:
                log.exception("mail round failed")
                done = 0
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.idle_poll_s)

    async def send_due(self) -> int:
        now = self.clock()
        due = await self.db.write(
            lambda conn: outbox.claim_due(conn, now, self.config.batch, self.config.lease)
        )
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(job: outbox.MailJob) -> None:
            async with gate:
                await self._send(job)

        await asyncio.gather(*(one(job) for job in due))
        return len(due)

    async def _attempt(self, job: outbox.MailJob) -> smtp.SendOutcome:
        def load(conn: Conn) -> tuple[StoredInvoice | None, dict[str, Any] | None, str]:
            seller = seller_store.get_seller(conn, job.seller_id)
            invoice = invoice_store.get_invoice(conn, job.invoice_id)
            return invoice, outbox.sender_of(conn, job.seller_id), seller.name if seller else ""

        invoice, stored, seller_name = await self.db.read(load)
        if invoice is None:
            return smtp.Refused("the invoice is gone")
        if stored is None:
            return smtp.Refused("the seller has no mail sender configured")
        try:
            account = smtp_account(stored, self.box(), self.environ)
        except SecretError as exc:
            return smtp.Refused(str(exc))
        files = {}
        for kind in ("pdf", "xml"):
            key = file_key(job.seller_id, job.invoice_id, kind)
            content = await asyncio.to_thread(self.store.get, key)
            if content is None:
                return smtp.Deferred(f"the {kind} is not in the file store")
            files[kind] = content
        message = compose(invoice, seller_name, account.sender, files)
        timeout = self.config.timeout_s
        return await asyncio.to_thread(
            smtp.send, account, message, self.policy, timeout_s=timeout, context=self.tls
        )

    async def _send(self, job: outbox.MailJob) -> None:
        outcome = await self._attempt(job)
        now = self.clock()
        next_at: datetime | None = None
        error: str | None = None
        if isinstance(outcome, smtp.Refused):
            error = outcome.reply
        elif isinstance(outcome, smtp.Deferred):
            error = outcome.reason
            if now - job.created_at < self.config.give_up_after:
                wait = self.config.backoff.backoff_s(job.attempts + 1, self.rng)
                next_at = now + timedelta(seconds=wait)
            else:
                error = f"gave up after {job.attempts + 1} attempts: {error}"
        if error is not None and next_at is None:
            log.warning("mail for invoice %s failed: %s", job.invoice_id, error)
        await self.db.write(lambda conn: outbox.record(
            conn, job, now=now, sent=isinstance(outcome, smtp.Sent), error=error,
            next_attempt_at=next_at))  # fmt: skip
