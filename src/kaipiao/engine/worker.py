"""The worker: claims due invoices, has each dispatched, and records what the answer means.

One loop claims batches while there is room; each claimed invoice is handled by its own task:

    dispatch   the gates and the platform call (`engine/dispatch.py`)
    decide     what the answer means: next status and fields (`engine/decide.py`, pure)
    record     one fenced write: the result, the lease released, one ledger event, plus any
               compensation (`engine/record.py`)

A "not found" is trusted only after `resend_after`: a request that reached the platform just
before its sender died may still be processed after a query finds nothing (measured: a kill -9
drill on a platform without dedup issued one serial twice before this rule). Every attempt sends
before its lease ends (a worker checks its own lease deadline before each send), so the end of
the last lease plus the platform's longest processing time (`settle_s`) bounds every earlier send.

A task that dies leaves its lease to expire; whoever claims it next queries first. Leases are
renewed while calls are in flight; on shutdown, in-flight calls get a grace period and the rest
are released. A failed renewal stops sends for those invoices until a renewal succeeds.
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

from kaipiao.clock import utcnow
from kaipiao.domain.sellers import Seller
from kaipiao.engine.breaker import BreakerConfig
from kaipiao.engine.decide import Attempt, Settlement, decide
from kaipiao.engine.dispatch import Answered, Dispatcher, Refused
from kaipiao.engine.observer import EngineObserver, NoObserver
from kaipiao.engine.quota import QuotaGate
from kaipiao.engine.record import record_durably
from kaipiao.engine.retry import RetryPolicy
from kaipiao.observability import logs
from kaipiao.platform.protocol import TaxPlatform
from kaipiao.store import invoices as repo
from kaipiao.store import overview, queue
from kaipiao.store.database import Database
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
    settle_s: float = 60.0  # the platform's longest time from receiving a request to acting on
    # it; only a platform that does not deduplicate serials needs it right (sandbox: 10-30 s)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)


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
        extra_state: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        self.db, self.extra_state = db, extra_state  # extra_state: more for the heartbeat
        self.observer: EngineObserver = observer or NoObserver()
        self.config = config or WorkerConfig()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.clock = clock
        self.rng = random.Random(seed)
        if self.config.renew_every_s >= self.config.lease_s / 2:
            raise ValueError("renew_every_s must be under half of lease_s")
        self.stats: Counter[str] = Counter()
        self.dispatch = Dispatcher(
            platform, QuotaGate(db, clock, rng=self.rng), self.observer, rng=self.rng,
            breaker=self.config.breaker, clock=clock, stats=self.stats,
            original_of=lambda i: db.read(lambda conn: repo.get_invoice(conn, i)),
        )  # fmt: skip
        self.active: dict[str, asyncio.Task[None]] = {}
        self._sellers: dict[str, Seller] = {}
        self._deadlines: dict[str, float] = {}  # invoice id → monotonic end of our lease
        self._room = asyncio.Event()

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
        skip = self.dispatch.closed_regions()
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
        breakers, limits = self.dispatch.breakers, self.dispatch.limits
        return {
            "breakers": {region: b.state.value for region, b in sorted(breakers.items())},
            "limits": {region: int(lim.limit) for region, lim in sorted(limits.items())},
            "in_flight": len(self.active),
            "issued": self.stats["submit_issued"] + self.stats["submit_duplicate"]
            + self.stats["query_issued"],
            **(self.extra_state() if self.extra_state else {}),
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
                log.exception("renewing leases failed; no sends for %d invoices", len(ids))
                self._deadlines.update((i, 0.0) for i in ids if i in self._deadlines)

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

    async def _process(self, item: queue.Claimed) -> None:
        invoice = item.invoice
        seller = await self._seller(invoice.seller_id)
        result = await self.dispatch.attempt(item, seller, lambda: self._lease_alive(invoice.id))
        if result is None:  # our lease ran out before sending: leave the invoice to its owner
            return
        now = self.clock()
        if isinstance(result, Refused):
            until = now + timedelta(seconds=result.delay_s)
            await self.db.write(
                lambda conn: queue.release(conn, item, now=now, until=until, reason=result.reason)
            )
            self.stats[f"released_{result.reason}"] += 1
            self.observer.retry(result.reason)
            return
        settlement = self._decide(item, result, now)
        if not await record_durably(self.db, item, settlement, now):
            self.stats["lease_lost"] += 1
            log.warning("invoice %s: lease lost before recording %s", invoice.id, result.outcome)
            return
        if settlement.event == "unconfirmed":
            self.stats["not_found_too_early"] += 1
        elif settlement.event == "issued":
            self.observer.issued((now - invoice.created_at).total_seconds())
        if settlement.retry_reason is not None:
            self.observer.retry(settlement.retry_reason)

    def _decide(self, item: queue.Claimed, answer: Answered, now: datetime) -> Settlement:
        invoice, config = item.invoice, self.config
        attempt = Attempt(answer.phase, invoice.attempts, now - invoice.created_at, item.previous,
                          item.resend_after)  # fmt: skip
        return decide(answer.outcome, attempt, policy=config.policy, now=now, rng=self.rng,
                      settle_s=config.settle_s)  # fmt: skip

    async def _seller(self, seller_id: str) -> Seller:
        seller = self._sellers.get(seller_id)
        if seller is None:
            seller = await self.db.read(lambda conn: get_seller(conn, seller_id))
            if seller is None:
                raise LookupError(f"seller {seller_id} vanished")
            self._sellers[seller_id] = seller
        return seller

    def _lease_alive(self, invoice_id: str) -> bool:
        return time.monotonic() < self._deadlines.get(invoice_id, 0.0)


async def _wait_any(stop: asyncio.Event, other: asyncio.Event | None, wait_s: float) -> None:
    """Wait until `stop` or `other` is set, or `wait_s` passes."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if other is not None:
        waiters.append(asyncio.ensure_future(other.wait()))
    done, pending = await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    for task in (*pending, *done):
        task.cancel()
