"""Fetching issued invoices' files: a small loop apart from the workers, like the webhook sender.

The outbox (`store/files.py`, one row per issued invoice, written with the issue) is claimed in
batches under a lease; each invoice's files are asked of the platform (`TaxPlatform.fetch_files`),
written to the file store, and recorded with their SHA3-256 in a `files_stored` ledger event.
Nothing here is on the issuing path: a slow or failing file service delays files, never
invoices. "Not yet" (NotFound), Unavailable and Throttled are retried with full-jitter backoff
(2 s doubling to 10 min) for `give_up_after` (7 days); a refusal (`FilesRefused`: a URL outside
the allowlist, an over-large file) fails the job at once with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from kaipiao.engine.retry import RetryPolicy
from kaipiao.platform.outcomes import NotFound, Throttled, Unavailable
from kaipiao.platform.protocol import FilesRefused, InvoiceFiles, TaxPlatform
from kaipiao.store import files as outbox
from kaipiao.store.database import Database
from kaipiao.store.filestore import FileStore, file_key

log = logging.getLogger("kaipiao.files")


def sha3(content: bytes) -> str:
    return hashlib.sha3_256(content).hexdigest()


BACKOFF = RetryPolicy(base_s=2.0, cap_s=600.0)


@dataclass
class FileFetchConfig:
    batch: int = 20
    concurrency: int = 4
    backoff: RetryPolicy = BACKOFF
    give_up_after: timedelta = timedelta(days=7)
    idle_poll_s: float = 1.0
    lease: timedelta = timedelta(seconds=120)


class FileFetcher:
    def __init__(
        self,
        db: Database,
        platform: TaxPlatform,
        store: FileStore,
        clock: Callable[[], datetime],
        config: FileFetchConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.platform = platform
        self.store = store
        self.clock = clock
        self.config = config or FileFetchConfig()
        self.rng = rng or random.Random()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await self.fetch_due()
            except Exception:
                log.exception("file fetch round failed")
                done = 0
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.idle_poll_s)

    async def fetch_due(self) -> int:
        """One round: claim due jobs and work them; returns how many were claimed."""
        now = self.clock()
        due = await self.db.write(
            lambda conn: outbox.claim_due(conn, now, self.config.batch, self.config.lease)
        )
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(job: outbox.FileJob) -> None:
            async with gate:
                await self._fetch(job)

        await asyncio.gather(*(one(job) for job in due))
        return len(due)

    async def _fetch(self, job: outbox.FileJob) -> None:
        invoice = job.invoice
        assert invoice.invoice_number is not None
        outcome = await self.platform.fetch_files(
            invoice.invoice_number, serial_no=invoice.serial_no,
            seller_tax_id=job.seller_tax_id, seller_region=invoice.region,
        )  # fmt: skip
        if isinstance(outcome, InvoiceFiles):
            hashes = {}
            for item in outcome.files:
                # The bytes are on disk before the ledger names them: a crash in between leaves
                # a file no event covers, which the next attempt overwrites.
                await asyncio.to_thread(
                    self.store.put, file_key(invoice.seller_id, invoice.id, item.kind),
                    item.content,
                )  # fmt: skip
                hashes[item.kind] = (sha3(item.content), len(item.content))
            now = self.clock()
            await self.db.write(lambda conn: outbox.record_stored(conn, invoice, hashes, now))
            return
        now = self.clock()
        error, retry = self._failure(outcome)
        next_at: datetime | None = None
        if retry and now - job.created_at < self.config.give_up_after:
            wait = self.config.backoff.backoff_s(job.attempts + 1, self.rng)
            if isinstance(outcome, Throttled | Unavailable) and outcome.retry_after_s:
                wait = max(wait, outcome.retry_after_s)
            next_at = now + timedelta(seconds=wait)
        else:
            log.warning("files of %s given up: %s", invoice.id, error)
        await self.db.write(lambda conn: outbox.record_failure(
            conn, invoice.id, error=error, next_attempt_at=next_at))  # fmt: skip

    @staticmethod
    def _failure(outcome: NotFound | FilesRefused | Throttled | Unavailable) -> tuple[str, bool]:
        if isinstance(outcome, FilesRefused):
            return f"refused: {outcome.reason}", False
        if isinstance(outcome, NotFound):
            return "the platform has no files for it yet", True
        if isinstance(outcome, Throttled):
            return "throttled", True
        return f"unavailable: {outcome.reason}", True
