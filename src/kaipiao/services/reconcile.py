"""Reconciliation: local state against the platform's own listing of what it issued.

For every seller with invoices in the window, page through the platform's listing and match by
serial number:

- issued there, still unsettled here (issuing, attention): settled as issued, adopting the
  platform's number (event `reconciled`);
- issued there, but queued, rejected or cancelled here, or issued here under another number: a
  contradiction, put into `attention` for an operator;
- issued here (longer ago than `grace`, so the listing has caught up) but unknown there: a
  contradiction, into `attention`;
- issued there under a serial kaipiao never made: a contradiction, reported (nothing local to
  flag).

The deviation rate is contradictions / invoices compared; every run is recorded, so the rate is a
metric and `kaipiao status` shows the last one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from kaipiao.domain.lifecycle import Status
from kaipiao.platform.outcomes import Throttled
from kaipiao.platform.protocol import ListedInvoice, ListedPage, TaxPlatform
from kaipiao.store import invoices as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.reconcile import record_run
from kaipiao.store.records import StoredInvoice
from kaipiao.store.sellers import get_seller

log = logging.getLogger("kaipiao.reconcile")
UNSETTLED = {Status.ISSUING, Status.ATTENTION}


@dataclass
class Report:
    since: datetime
    checked: int = 0
    settled: int = 0
    contradictions: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)

    @property
    def deviation(self) -> float:
        return len(self.contradictions) / self.checked if self.checked else 0.0


async def _listing(
    platform: TaxPlatform, tax_id: str, since: datetime, until: datetime, attempts: int = 5
) -> dict[str, ListedInvoice] | None:
    found: dict[str, ListedInvoice] = {}
    page: int | None = 1
    while page is not None:
        for attempt in range(attempts):
            answer = await platform.list_issued(tax_id, since, until, page)
            if isinstance(answer, ListedPage):
                break
            wait = answer.retry_after_s if isinstance(answer, Throttled) else 0.5 * 2**attempt
            await asyncio.sleep(min(wait, 10.0))
        else:
            return None
        found.update((item.serial_no, item) for item in answer.invoices)
        page = answer.next_page
    return found


def _compare(
    conn: Conn,
    local: list[StoredInvoice],
    listed: dict[str, ListedInvoice],
    since: datetime,
    now: datetime,
    grace: timedelta,
) -> Report:
    """One seller's comparison (a unit of work: its report counts only once it commits)."""
    report = Report(since=since)

    def flag(invoice: StoredInvoice, why: str) -> None:
        report.contradictions.append(f"{invoice.id}: {why}")
        repo.transition(
            conn, invoice, Status.ATTENTION, now=now, event="reconcile_contradiction",
            payload={"reason": why},
            fields={"error_code": "reconcile_contradiction", "error_message": why,
                    "next_attempt_at": None, "lease_owner": None, "lease_expires_at": None},
        )  # fmt: skip

    seen: set[str] = set()
    for invoice in local:
        there = listed.get(invoice.serial_no)
        seen.add(invoice.serial_no)
        if there is not None:
            report.checked += 1
            if invoice.status in UNSETTLED:
                settled = repo.transition(
                    conn, invoice, Status.ISSUED, now=now, event="reconciled",
                    payload={"invoice_number": there.invoice_number},
                    fields={"invoice_number": there.invoice_number, "issued_at": there.issued_at,
                            "error_code": None, "error_message": None, "next_attempt_at": None,
                            "lease_owner": None, "lease_expires_at": None},
                )  # fmt: skip
                report.settled += int(settled)
            elif invoice.status in (Status.QUEUED, Status.REJECTED, Status.CANCELLED):
                flag(invoice, f"issued on the platform as {there.invoice_number}, "
                              f"{invoice.status.value} here")  # fmt: skip
            elif invoice.invoice_number not in (None, there.invoice_number):
                flag(invoice, f"issued here as {invoice.invoice_number}, on the platform as "
                              f"{there.invoice_number}")  # fmt: skip
        elif (
            invoice.status is Status.ISSUED
            and invoice.issued_at
            and since <= invoice.issued_at <= now - grace
        ):
            report.checked += 1
            flag(invoice, f"issued here as {invoice.invoice_number}, unknown on the platform")
    for serial, there in listed.items():
        if serial not in seen and not repo.serial_known(conn, serial):
            report.checked += 1
            report.contradictions.append(
                f"serial {serial}: issued on the platform as {there.invoice_number}, unknown here"
            )
    return report


async def reconcile(
    db: Database,
    platform: TaxPlatform,
    *,
    since: datetime,
    clock: Callable[[], datetime],
    grace: timedelta = timedelta(minutes=10),
) -> Report:
    """Compare everything changed since `since` with the platform; record and return the run."""
    started = clock()
    report = Report(since=since)
    for seller_id in await db.read(partial(repo.sellers_changed_since, since=since)):
        seller = await db.read(partial(get_seller, seller_id=seller_id))
        if seller is None:
            continue
        listed = await _listing(platform, seller.tax_id, since, clock() + timedelta(minutes=1))
        if listed is None:
            report.unreachable.append(seller.id)
            continue
        local = await db.read(partial(repo.changed_since, seller_id=seller_id, since=since))
        part = await db.write(
            partial(_compare, local=local, listed=listed, since=since, now=clock(), grace=grace)
        )
        report.checked += part.checked
        report.settled += part.settled
        report.contradictions += part.contradictions
    finished = clock()
    await db.write(
        lambda conn: record_run(
            conn, started_at=started, finished_at=finished, since=since, checked=report.checked,
            settled=report.settled, contradictions=len(report.contradictions),
            unreachable=len(report.unreachable),
        )
    )  # fmt: skip
    log.info(
        "reconciled since %s: %d checked, %d settled, %d contradictions",
        since.isoformat(), report.checked, report.settled, len(report.contradictions),
    )  # fmt: skip
    return report


@dataclass
class ReconcileJob:
    """Reconciles the last `window` every `every_s` seconds (in `serve`)."""

    db: Database
    platform: TaxPlatform
    clock: Callable[[], datetime]
    every_s: float = 300.0
    window: timedelta = timedelta(hours=24)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.every_s)
            except TimeoutError:
                try:
                    await reconcile(
                        self.db, self.platform, since=self.clock() - self.window, clock=self.clock
                    )
                except Exception:
                    log.exception("reconciliation failed; the next run tries again")
