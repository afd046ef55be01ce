"""The worker: claims due invoices, calls the platform within the limits, and records outcomes.

One loop claims batches while there is room; each claimed invoice is handled by its own task:

    gates      retry budget (retries only) → circuit breaker of its region → seller quota
               → adaptive concurrency limit of its region
    call       query by serial first whenever a call may already have reached the platform
               (any earlier attempt, a pending poll, a lease taken over from a dead worker);
               submit only on a confirmed NotFound, or on a first attempt
    record     one fenced write: the result, the lease released, one ledger event; plus the
               red invoice when a cancel raced the issue, or the original's reversal

A "not found" is trusted only after `resend_after`: a request that reached the platform just
before its sender died may still be processed after a query finds nothing (measured: a kill -9
drill on a platform without dedup issued one serial twice before this rule). Every attempt sends
before its lease ends (a worker checks its own lease deadline before each send), so the end of
the last lease plus the platform's longest processing time (`settle_s`) bounds every earlier send.

An invoice refused at a gate is released untouched (its attempt not charged). A task that dies
leaves its lease to expire; whoever claims it next queries first. Leases are renewed while calls
are in flight; on shutdown, in-flight calls get a grace period and the rest are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Connection

from kaipiao.clock import utcnow
from kaipiao.domain.invoice import Buyer
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.sellers import Seller
from kaipiao.engine.breaker import BreakerConfig, CircuitBreaker
from kaipiao.engine.budget import RetryBudget
from kaipiao.engine.limits import AdaptiveLimit
from kaipiao.engine.observer import EngineObserver, NoObserver
from kaipiao.engine.quota import QuotaGate
from kaipiao.engine.retry import OutcomeClass, RetryPolicy, classify
from kaipiao.observability import logs
from kaipiao.platform.outcomes import (
    Ambiguous,
    Duplicate,
    Issued,
    IssueOutcome,
    NotFound,
    Pending,
    QueryOutcome,
    Rejected,
    Throttled,
)
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine, RedRequest, TaxPlatform
from kaipiao.services.reversal import create_red
from kaipiao.store import invoices as repo
from kaipiao.store import overview, queue
from kaipiao.store.database import Database
from kaipiao.store.records import StoredInvoice
from kaipiao.store.sellers import get_seller

log = logging.getLogger("kaipiao.worker")
HEARTBEAT_S = 5.0  # how often a worker reports its breakers and limits to the store


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    lease_s: float = 15.0
    renew_every_s: float = 5.0  # well inside the lease (measured: renewing slower than the
    # lease let waiting invoices be taken over, tripling platform calls in a 3-worker drill)
    batch: int = 100
    idle_poll_s: float = 0.25
    max_in_flight: int = 500
    shutdown_grace_s: float = 20.0
    # The platform's longest time from receiving a request to acting on it. Only a platform that
    # does not deduplicate serials needs it to be right; sandbox profiles cap latency at 10-30 s.
    settle_s: float = 60.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


def platform_invoice(invoice: StoredInvoice, seller: Seller) -> PlatformInvoice:
    lines = tuple(
        PlatformLine(
            name=line["name"], tax_code=line["tax_code"], quantity=Decimal(line["quantity"]),
            unit_price=Decimal(line["unit_price"]), tax_rate=line["tax_rate"],
            amount=Decimal(line["amount"]), tax=Decimal(line["tax"]), spec=line.get("spec"),
            unit=line.get("unit"), price_includes_tax=bool(line.get("price_includes_tax", False)),
        )
        for line in invoice.lines
    )  # fmt: skip
    return PlatformInvoice(
        serial_no=invoice.serial_no,
        order_ref=invoice.order_id,
        seller_tax_id=seller.tax_id,
        seller_region=invoice.region,
        invoice_type=invoice.invoice_type,
        buyer=Buyer(**invoice.buyer),
        lines=lines,
        total_amount=invoice.total_amount,
        total_tax=invoice.total_tax,
        total=invoice.total,
        remark=invoice.remark,
    )


class Worker:
    """One worker process's engine. `run` until `stop` is set."""

    def __init__(
        self,
        db: Database,
        platform: TaxPlatform,
        config: WorkerConfig | None = None,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        seed: int | None = None,
        observer: EngineObserver | None = None,
    ) -> None:
        self.db = db
        self.observer: EngineObserver = observer or NoObserver()
        self.platform = platform
        self.config = config or WorkerConfig()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.clock = clock
        self.rng = random.Random(seed)
        self.policy = self.config.policy
        if self.config.renew_every_s >= self.config.lease_s / 2:
            raise ValueError("renew_every_s must be under half of lease_s")
        self.budget = RetryBudget()
        self.quota = QuotaGate(db, clock, rng=self.rng)
        self.breakers: dict[str, CircuitBreaker] = {}
        self.limits: dict[str, AdaptiveLimit] = {}
        self.active: dict[str, asyncio.Task[None]] = {}
        self.stats: Counter[str] = Counter()
        self._sellers: dict[str, Seller] = {}
        self._deadlines: dict[str, float] = {}  # invoice id → monotonic end of our lease
        self._room = asyncio.Event()

    # -- loops ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        renewer = asyncio.create_task(self._renew_loop(stop))
        log.info("worker %s started", self.owner)
        try:
            while not stop.is_set():
                if len(self.active) >= self.config.max_in_flight:
                    self._room.clear()
                    await _wait_any(stop, self._room, wait_s=1.0)
                    continue
                room = self.config.max_in_flight - len(self.active)
                if self.active and room < min(self.config.batch, self.config.max_in_flight) // 4:
                    # Claim in batches: a claim costs a transaction whatever its size.
                    self._room.clear()
                    await _wait_any(stop, self._room, wait_s=0.1)
                try:
                    claimed = await self.claim_once()
                except Exception:
                    log.exception("claiming failed; retrying")
                    claimed = 0
                if claimed == 0:
                    await _wait_any(stop, None, wait_s=self.config.idle_poll_s)
        finally:
            await self._shutdown()
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with contextlib.suppress(Exception):
                await self.db.write(lambda conn: overview.forget_worker(conn, self.owner))
            log.info("worker %s stopped", self.owner)

    async def claim_once(self) -> int:
        room = self.config.max_in_flight - len(self.active)
        if room <= 0:
            return 0
        skip = [region for region, b in self.breakers.items() if not b.accepting()]
        now = self.clock()
        started = time.monotonic()
        claimed = await self.db.write(
            lambda conn: queue.claim_due(
                conn, owner=self.owner, now=now, lease=timedelta(seconds=self.config.lease_s),
                limit=min(room, self.config.batch), skip_regions=skip,
                settle=timedelta(seconds=self.config.settle_s),
            )
        )  # fmt: skip
        for item in claimed:
            self._deadlines[item.invoice.id] = started + self.config.lease_s - 1.0
            self.active[item.invoice.id] = asyncio.create_task(self._handle(item))
        self.stats["claimed"] += len(claimed)
        return len(claimed)

    async def run_until_idle(self, *, timeout_s: float = 60.0, settle_s: float = 0.0) -> None:
        """Process due work until nothing is due or in flight (tests and one-off runs)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            claimed = await self.claim_once()
            if self.active:
                await asyncio.wait(list(self.active.values()), timeout=0.5)
            elif claimed == 0:
                if settle_s <= 0:
                    return
                await asyncio.sleep(settle_s)
                if await self.claim_once() == 0 and not self.active:
                    return
        raise TimeoutError("work did not run out in time")

    def report(self) -> dict[str, object]:
        """This worker's view, as its heartbeat carries it (see `kaipiao status`)."""
        return {
            "breakers": {region: b.state.value for region, b in sorted(self.breakers.items())},
            "limits": {region: int(lim.limit) for region, lim in sorted(self.limits.items())},
            "in_flight": len(self.active),
            "issued": self.stats["submit_issued"] + self.stats["submit_duplicate"]
            + self.stats["query_issued"],
        }  # fmt: skip

    async def _heartbeat(self) -> None:
        now, state = self.clock(), self.report()
        try:
            await self.db.write(lambda conn: overview.beat(conn, self.owner, now, state))
        except Exception:
            log.exception("heartbeat failed")

    async def _renew_loop(self, stop: asyncio.Event) -> None:
        last_beat = 0.0
        while not stop.is_set():
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                await self._heartbeat()
                last_beat = time.monotonic()
            await _wait_any(stop, None, wait_s=self.config.renew_every_s)
            ids = list(self.active)
            if not ids:
                continue
            until = self.clock() + timedelta(seconds=self.config.lease_s)
            started = time.monotonic()
            try:
                held = await self.db.write(
                    functools.partial(
                        queue.renew_leases, owner=self.owner, ids=ids, until=until,
                        settle=timedelta(seconds=self.config.settle_s),
                    )
                )  # fmt: skip
                for invoice_id in held:
                    if invoice_id in self._deadlines:
                        self._deadlines[invoice_id] = started + self.config.lease_s - 1.0
            except Exception:
                log.exception("renewing leases failed")

    async def _shutdown(self) -> None:
        if self.active:
            await asyncio.wait(list(self.active.values()), timeout=self.config.shutdown_grace_s)
        leftovers = list(self.active.items())
        for _, task in leftovers:
            task.cancel()
        if leftovers:
            ids = [invoice_id for invoice_id, _ in leftovers]
            now = self.clock()
            # Calls may be in flight: expire the leases (not a plain release) so that whoever
            # takes them next queries the platform first.
            await self.db.write(
                lambda conn: queue.renew_leases(conn, owner=self.owner, ids=ids, until=now)
            )

    # -- one invoice ---------------------------------------------------------------------------
    async def _handle(self, item: queue.Claimed) -> None:
        invoice = item.invoice  # this task's own log context: every line names the invoice
        logs.bind(invoice_id=invoice.id, serial_no=invoice.serial_no, seller_id=invoice.seller_id)
        try:
            await self._process(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats["task_errors"] += 1
            log.exception("invoice %s: handling failed; its lease will lapse", item.invoice.id)
        finally:
            self.active.pop(item.invoice.id, None)
            self._deadlines.pop(item.invoice.id, None)
            self._room.set()

    def _breaker(self, region: str) -> CircuitBreaker:
        if region not in self.breakers:
            self.breakers[region] = CircuitBreaker(self.config.breaker)
        return self.breakers[region]

    def _limit(self, region: str) -> AdaptiveLimit:
        if region not in self.limits:
            self.limits[region] = AdaptiveLimit()
        return self.limits[region]

    async def _seller(self, seller_id: str) -> Seller:
        seller = self._sellers.get(seller_id)
        if seller is None:
            seller = await self.db.read(lambda conn: get_seller(conn, seller_id))
            if seller is None:
                raise LookupError(f"seller {seller_id} vanished")
            self._sellers[seller_id] = seller
        return seller

    async def _release(self, item: queue.Claimed, delay_s: float, reason: str) -> None:
        now = self.clock()
        until = now + timedelta(seconds=delay_s)
        await self.db.write(
            lambda conn: queue.release(conn, item, now=now, until=until, reason=reason)
        )
        self.stats[f"released_{reason}"] += 1
        self.observer.retry(reason)

    def _lease_alive(self, invoice_id: str) -> bool:
        return time.monotonic() < self._deadlines.get(invoice_id, 0.0)

    async def _submit(self, invoice: StoredInvoice, seller: Seller) -> IssueOutcome | None:
        """Send the invoice, unless our lease may have ended (then None: nothing was sent)."""
        if not self._lease_alive(invoice.id):
            self.stats["lease_expired_before_send"] += 1
            return None
        if invoice.kind is Kind.BLUE:
            return await self.platform.issue(platform_invoice(invoice, seller))
        original_id = invoice.original_id
        assert original_id is not None
        original = await self.db.read(lambda conn: repo.get_invoice(conn, original_id))
        assert original is not None
        assert original.invoice_number is not None
        return await self.platform.issue_red(
            RedRequest(
                serial_no=invoice.serial_no,
                original_invoice_number=original.invoice_number,
                reason=invoice.reverse_reason or "invoicing_error",
                seller_tax_id=seller.tax_id,
                seller_region=invoice.region,
            )
        )

    async def _process(self, item: queue.Claimed) -> None:
        invoice = item.invoice
        seller = await self._seller(invoice.seller_id)
        breaker = self._breaker(invoice.region)
        retry = item.must_query_first
        # Peek at the budget, then ask the breaker, then spend: a call the breaker refuses must
        # not cost a retry token (measured: refused calls drained the budget after an outage).
        if item.is_retry and not self.budget.can_retry():
            # A budget refusal limits the rate of retries; it says nothing about this invoice, so
            # it comes back soon (measured: releasing with its exponential backoff left most of a
            # post-outage backlog asleep for up to a minute after the platform recovered).
            await self._release(item, self.rng.uniform(0.5, 2.0), "budget")
            return
        if not breaker.allow():
            await self._release(item, max(0.5, breaker.retry_in_s()), "breaker_open")
            return
        if item.is_retry:
            self.budget.try_retry()
        else:
            self.budget.first_attempt()
        limit = self._limit(invoice.region)
        phase = "query" if retry else "submit"
        await self.quota.acquire(seller)
        await limit.acquire()
        started = time.monotonic()
        outcome: IssueOutcome | QueryOutcome | None
        try:
            if retry:
                outcome = await self.platform.query(
                    invoice.serial_no, seller_region=invoice.region, seller_tax_id=seller.tax_id
                )
                self.stats[f"query_{type(outcome).__name__.lower()}"] += 1
                if isinstance(outcome, NotFound) and item.may_resend(self.clock()):
                    # Confirmed: nothing under this serial, and no earlier send can still land.
                    await self.quota.acquire(seller)
                    phase = "submit"
                    outcome = await self._submit(invoice, seller)
            else:
                outcome = await self._submit(invoice, seller)
        except BaseException as exc:
            breaker.record(True, time.monotonic() - started)
            await limit.release(False)
            self.observer.call(
                _endpoint(invoice, phase), invoice.region, type(exc).__name__.lower(),
                time.monotonic() - started,
            )  # fmt: skip
            raise
        elapsed = time.monotonic() - started
        if outcome is not None:
            self.observer.call(
                _endpoint(invoice, phase), invoice.region, type(outcome).__name__.lower(), elapsed
            )
        if outcome is None:  # our lease ran out before sending: leave the invoice to its owner
            breaker.record(False, 0.0)
            await limit.release(True)
            return
        if isinstance(outcome, NotFound):  # not yet trusted: an earlier send may still land
            breaker.record(False, elapsed)  # the platform answered: that is a healthy call
            self.budget.success()
            await limit.release(True)
            await self._wait_for_settle(item)
            return
        kind = classify(outcome)
        failed = kind in (OutcomeClass.SAFE, OutcomeClass.VERIFY)
        breaker.record(failed, elapsed)
        # The concurrency limit reacts to congestion only (timeouts, 429); error
        # rates are the breaker's business. (Measured: cutting on the normal profile's random
        # 0.5% failures pinned the limit near 60 calls in flight, a quarter of what 300/s needs.)
        timed_out = isinstance(outcome, Ambiguous) and "Timeout" in outcome.reason
        congested = kind is OutcomeClass.WAIT or timed_out
        await limit.release(not congested)
        if kind not in (OutcomeClass.SAFE, OutcomeClass.VERIFY, OutcomeClass.WAIT):
            # Any definite answer shows a healthy platform and earns retry budget (measured: with
            # only issues counted, queries answered "not found yet" after an outage left the
            # budget at its floor and the drain at 1% of quota).
            self.budget.success()
        self.stats[f"{phase}_{type(outcome).__name__.lower()}"] += 1
        await self._record(item, outcome, phase)
        if kind is OutcomeClass.DONE:
            self.observer.issued((self.clock() - invoice.created_at).total_seconds())
        elif kind is not OutcomeClass.PENDING and not (
            kind is OutcomeClass.FINAL and phase == "submit"
        ):
            self.observer.retry(type(outcome).__name__.lower())

    async def _wait_for_settle(self, item: queue.Claimed) -> None:
        assert item.resend_after is not None
        now = self.clock()
        until = item.resend_after
        written = await self.db.write(
            lambda conn: queue.settle(
                conn, item, Status.ISSUING, now=now, event="unconfirmed",
                fields={"attempts": item.invoice.attempts - 1, "next_attempt_at": until,
                        "resend_after": until},
                payload={"outcome": "NotFound", "resend_after": until},
            )
        )  # fmt: skip
        self.stats["not_found_too_early"] += 1
        if written is None:
            self.stats["lease_lost"] += 1

    # -- recording outcomes --------------------------------------------------------------------
    async def _record(
        self, item: queue.Claimed, outcome: IssueOutcome | QueryOutcome, phase: str
    ) -> None:
        now = self.clock()
        written = await self.db.write(lambda conn: self._write(conn, item, outcome, phase, now))
        if not written:
            self.stats["lease_lost"] += 1
            log.warning("invoice %s: lease lost before recording %s", item.invoice.id, outcome)

    def _write(
        self,
        conn: Connection,
        item: queue.Claimed,
        outcome: IssueOutcome | QueryOutcome,
        phase: str,
        now: datetime,
    ) -> bool:
        invoice = item.invoice
        kind = classify(outcome)
        summary = {"outcome": type(outcome).__name__, "phase": phase, "attempt": invoice.attempts}
        # This attempt sent nothing that could still land (a query only, or a send the platform
        # certainly did not take): the earlier bound on resending stands.
        sent_nothing = phase == "query" or kind in (OutcomeClass.SAFE, OutcomeClass.WAIT)
        keep: dict[str, object] = {"resend_after": item.resend_after} if sent_nothing else {}
        if kind is OutcomeClass.VERIFY and phase == "submit":
            # We are alive to record it, so our send happened before now: a tighter bound than
            # the end of the lease, which only a crash leaves standing.
            keep = {"resend_after": now + timedelta(seconds=self.config.settle_s)}
        exhausted = self.policy.exhausted(invoice.attempts, now - invoice.created_at)

        def attention(reason: str) -> bool:
            return queue.settle(
                conn, item, Status.ATTENTION, now=now, event="attention",
                fields={"error_code": "retries_exhausted", "error_message": reason,
                        "next_attempt_at": None},
                payload={**summary, "reason": reason},
            ) is not None  # fmt: skip

        if kind is OutcomeClass.DONE:
            assert isinstance(outcome, Issued | Duplicate)
            issued = queue.settle(
                conn, item, Status.ISSUED, now=now, event="issued",
                fields={"invoice_number": outcome.invoice_number,
                        "issued_at": outcome.issued_at or now, "error_code": None,
                        "error_message": None, "next_attempt_at": None},
                payload={**summary, "invoice_number": outcome.invoice_number},
            )  # fmt: skip
            if issued is None:
                return False
            self._after_issue(conn, issued, now)
            return True
        if kind is OutcomeClass.PENDING:
            assert isinstance(outcome, Pending)
            if exhausted and invoice.attempts > self.policy.max_attempts * 4:
                return attention("still pending on the platform")
            delay = self.policy.poll_s(invoice.attempts, outcome.poll_after_s, self.rng)
            return queue.settle(
                conn, item, Status.ISSUING, now=now, event="pending",
                fields={"next_attempt_at": now + timedelta(seconds=delay), **keep},
                payload=summary,
            ) is not None  # fmt: skip
        if kind is OutcomeClass.FINAL and phase == "submit":
            assert isinstance(outcome, Rejected)
            rejected = queue.settle(
                conn, item, Status.REJECTED, now=now, event="rejected",
                fields={"error_code": outcome.code, "error_message": outcome.message,
                        "next_attempt_at": None},
                payload={**summary, "code": outcome.code},
            )  # fmt: skip
            if rejected is None:
                return False
            if rejected.kind is Kind.RED and rejected.original_id:
                self._reversal_failed(conn, rejected, now)
            return True
        if kind is OutcomeClass.WAIT:
            assert isinstance(outcome, Throttled)
            return queue.settle(
                conn, item, item.previous, now=now, event="throttled",
                fields={"attempts": invoice.attempts - 1,
                        "next_attempt_at": now + timedelta(seconds=outcome.retry_after_s), **keep},
                payload=summary,
            ) is not None  # fmt: skip
        # Retry: the platform did nothing (SAFE on submit), failed this serial for good on its
        # side (FINAL on query: resubmit under the same serial), or may have issued it (VERIFY,
        # or SAFE on a query: still unconfirmed).
        if exhausted:
            return attention(f"{type(outcome).__name__} after {invoice.attempts} attempts")
        delay = self.policy.backoff_s(invoice.attempts, self.rng)
        unconfirmed = kind is OutcomeClass.VERIFY or (
            phase == "query" and kind is OutcomeClass.SAFE
        )
        target = Status.ISSUING if unconfirmed else Status.QUEUED
        return queue.settle(
            conn, item, target, now=now, event="retry",
            fields={"next_attempt_at": now + timedelta(seconds=delay), **keep,
                    "error_code": type(outcome).__name__.lower(),
                    "error_message": getattr(outcome, "reason", None)
                    or getattr(outcome, "message", None)},
            payload={**summary, "retry_in_s": round(delay, 3)},
        ) is not None  # fmt: skip

    def _after_issue(self, conn: Connection, issued: StoredInvoice, now: datetime) -> None:
        if issued.kind is Kind.RED and issued.original_id:
            original = repo.get_invoice(conn, issued.original_id, lock=True)
            if original is not None and original.status is Status.REVERSING:
                repo.transition(
                    conn, original, Status.REVERSED, now=now, event="reversed",
                    payload={"red_id": issued.id, "red_number": issued.invoice_number},
                )  # fmt: skip
        elif issued.kind is Kind.BLUE and issued.cancel_requested:
            # The cancel came while the call was in flight: the invoice exists on the platform,
            # so it is reversed with a red invoice rather than lost or left standing.
            create_red(conn, issued, "invoicing_error", now)

    def _reversal_failed(self, conn: Connection, red: StoredInvoice, now: datetime) -> None:
        assert red.original_id is not None
        original = repo.get_invoice(conn, red.original_id, lock=True)
        if original is not None and original.status is Status.REVERSING:
            repo.transition(
                conn, original, Status.ISSUED, now=now, event="reverse_failed",
                payload={"red_id": red.id, "code": red.error_code},
            )  # fmt: skip


def _endpoint(invoice: StoredInvoice, phase: str) -> str:
    if phase == "query":
        return "query"
    return "issue" if invoice.kind is Kind.BLUE else "issue_red"


async def _wait_any(stop: asyncio.Event, other: asyncio.Event | None, wait_s: float) -> None:
    """Wait until `stop` or `other` is set, or `wait_s` passes."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if other is not None:
        waiters.append(asyncio.ensure_future(other.wait()))
    done, pending = await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    for task in (*pending, *done):
        task.cancel()
