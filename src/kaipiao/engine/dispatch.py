"""Dispatch: the gates in front of the platform, and the call itself.

    gates   retry budget (retries only) → circuit breaker of its region → seller quota
            → adaptive concurrency limit of its region
    call    query by serial first whenever a call may already have reached the platform
            (any earlier attempt, a pending poll, a lease taken over from a dead worker);
            submit only on a confirmed NotFound, or on a first attempt

A gate's refusal comes back as `Refused`: the invoice is released untouched, its attempt not
charged. Every answer feeds the breaker, the limit, the budget and the observer here, so the
worker only records what the answer means (`engine/decide.py`).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from kaipiao.domain.invoice import Buyer
from kaipiao.domain.lifecycle import Kind
from kaipiao.domain.sellers import Seller
from kaipiao.engine.breaker import BreakerConfig, CircuitBreaker
from kaipiao.engine.budget import RetryBudget
from kaipiao.engine.decide import Phase
from kaipiao.engine.limits import AdaptiveLimit
from kaipiao.engine.observer import EngineObserver
from kaipiao.engine.quota import QuotaGate
from kaipiao.engine.retry import OutcomeClass, classify
from kaipiao.platform.outcomes import Ambiguous, IssueOutcome, NotFound, QueryOutcome
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine, RedRequest, TaxPlatform
from kaipiao.store.queue import Claimed
from kaipiao.store.records import StoredInvoice


@dataclass(frozen=True, slots=True)
class Refused:
    """A gate said no before any call: release the invoice, due again in `delay_s`."""

    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Answered:
    """The platform's answer, and whether this attempt sent the invoice or only asked."""

    outcome: IssueOutcome | QueryOutcome
    phase: Phase


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def platform_lines(invoice: StoredInvoice) -> tuple[PlatformLine, ...]:
    """The stored lines as a platform takes them (discount lines and red lines included)."""
    return tuple(
        PlatformLine(
            name=line["name"], tax_code=line["tax_code"], quantity=_decimal(line["quantity"]),
            unit_price=_decimal(line["unit_price"]), tax_rate=line["tax_rate"],
            amount=Decimal(line["amount"]), tax=Decimal(line["tax"]), spec=line.get("spec"),
            unit=line.get("unit"), price_includes_tax=bool(line.get("price_includes_tax", False)),
            kind=line.get("kind", "goods"), original_index=line.get("original_index"),
        )
        for line in invoice.lines
    )  # fmt: skip


def platform_invoice(invoice: StoredInvoice, seller: Seller) -> PlatformInvoice:
    lines = platform_lines(invoice)
    return PlatformInvoice(
        serial_no=invoice.serial_no,
        # Each part of a split order is its own invoice on the platform: its own reference.
        order_ref=invoice.order_id if invoice.parts == 1 else f"{invoice.order_id}/{invoice.part}",
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


def endpoint(invoice: StoredInvoice, phase: Phase) -> str:
    if phase is Phase.QUERY:
        return "query"
    return "issue" if invoice.kind is Kind.BLUE else "issue_red"


class Dispatcher:
    """One worker's gates and platform calls; state per region (breakers, limits)."""

    def __init__(
        self,
        platform: TaxPlatform,
        quota: QuotaGate,
        observer: EngineObserver,
        *,
        breaker: BreakerConfig,
        rng: random.Random,
        clock: Callable[[], datetime],
        stats: Counter[str],
        original_of: Callable[[str], Awaitable[StoredInvoice | None]],
    ) -> None:
        self.platform = platform
        self.quota = quota
        self.observer = observer
        self.breaker_config = breaker
        self.rng = rng
        self.clock = clock
        self.stats = stats
        self.original_of = original_of  # a red invoice's original, for its number
        self.budget = RetryBudget()
        self.breakers: dict[str, CircuitBreaker] = {}
        self.limits: dict[str, AdaptiveLimit] = {}

    def breaker(self, region: str) -> CircuitBreaker:
        if region not in self.breakers:
            self.breakers[region] = CircuitBreaker(self.breaker_config)
        return self.breakers[region]

    def limit(self, region: str) -> AdaptiveLimit:
        if region not in self.limits:
            self.limits[region] = AdaptiveLimit()
        return self.limits[region]

    def closed_regions(self) -> list[str]:
        """Regions whose breaker takes no calls now: not worth claiming for."""
        return [region for region, b in self.breakers.items() if not b.accepting()]

    async def attempt(
        self, item: Claimed, seller: Seller, lease_alive: Callable[[], bool]
    ) -> Refused | Answered | None:
        """Pass the gates and make the call. None: our lease may have ended before a send, so
        nothing was sent and the invoice is left to whoever holds it now."""
        invoice = item.invoice
        breaker = self.breaker(invoice.region)
        # Peek at the budget, then ask the breaker, then spend: a call the breaker refuses must
        # not cost a retry token (measured: refused calls drained the budget after an outage).
        if item.is_retry and not self.budget.can_retry():
            # A budget refusal limits the rate of retries; it says nothing about this invoice,
            # so it comes back soon (measured: releasing with its exponential backoff left most
            # of a post-outage backlog asleep for up to a minute after the platform recovered).
            return Refused(self.rng.uniform(0.5, 2.0), "budget")
        if not breaker.allow():
            return Refused(max(0.5, breaker.retry_in_s()), "breaker_open")
        if item.is_retry:
            self.budget.try_retry()
        else:
            self.budget.first_attempt()
        limit = self.limit(invoice.region)
        phase = Phase.QUERY if item.must_query_first else Phase.SUBMIT
        await self.quota.acquire(seller)
        await limit.acquire()
        started = time.monotonic()
        outcome: IssueOutcome | QueryOutcome | None
        try:
            if phase is Phase.QUERY:
                outcome = await self.platform.query(
                    invoice.serial_no, seller_region=invoice.region, seller_tax_id=seller.tax_id
                )
                if isinstance(outcome, NotFound) and item.may_resend(self.clock()):
                    # Confirmed: nothing under this serial, and no earlier send can still land.
                    self.stats["query_notfound"] += 1
                    await self.quota.acquire(seller)
                    phase = Phase.SUBMIT
                    outcome = await self._submit(invoice, seller, lease_alive)
            else:
                outcome = await self._submit(invoice, seller, lease_alive)
        except BaseException as exc:
            elapsed = time.monotonic() - started
            breaker.record(True, elapsed)
            await limit.release(False)
            self.observer.call(
                endpoint(invoice, phase), invoice.region, type(exc).__name__.lower(), elapsed
            )
            raise
        elapsed = time.monotonic() - started
        if outcome is None:  # our lease ran out before sending
            breaker.record(False, 0.0)
            await limit.release(True)
            return None
        name = type(outcome).__name__.lower()
        self.observer.call(endpoint(invoice, phase), invoice.region, name, elapsed)
        self.stats[f"{phase.value}_{name}"] += 1
        kind = classify(outcome)
        breaker.record(kind in (OutcomeClass.SAFE, OutcomeClass.VERIFY), elapsed)
        # The concurrency limit reacts to congestion only (timeouts, 429); error rates are the
        # breaker's business. (Measured: cutting on the normal profile's random 0.5% failures
        # pinned the limit near 60 calls in flight, a quarter of what 300/s needs.)
        timed_out = isinstance(outcome, Ambiguous) and "Timeout" in outcome.reason
        await limit.release(not (kind is OutcomeClass.WAIT or timed_out))
        if kind not in (OutcomeClass.SAFE, OutcomeClass.VERIFY, OutcomeClass.WAIT):
            # Any definite answer (a not-found included) shows a healthy platform and earns
            # retry budget (measured: with only issues counted, queries answered "not found yet"
            # after an outage left the budget at its floor and the drain at 1% of quota).
            self.budget.success()
        return Answered(outcome, phase)

    async def _submit(
        self, invoice: StoredInvoice, seller: Seller, lease_alive: Callable[[], bool]
    ) -> IssueOutcome | None:
        """Send the invoice, unless our lease may have ended (then None: nothing was sent)."""
        if not lease_alive():
            self.stats["lease_expired_before_send"] += 1
            return None
        if invoice.kind is Kind.BLUE:
            return await self.platform.issue(platform_invoice(invoice, seller))
        assert invoice.original_id is not None
        original = await self.original_of(invoice.original_id)
        assert original is not None
        assert original.invoice_number is not None
        # A red invoice for less than all of its original names its lines (部分红冲); one for
        # all of it is the plain reversal every platform takes.
        partial = invoice.total != -original.total
        return await self.platform.issue_red(
            RedRequest(
                serial_no=invoice.serial_no,
                original_invoice_number=original.invoice_number,
                reason=invoice.reverse_reason or "invoicing_error",
                seller_tax_id=seller.tax_id,
                seller_region=invoice.region,
                lines=platform_lines(invoice) if partial else (),
                total_amount=invoice.total_amount if partial else None,
                total_tax=invoice.total_tax if partial else None,
                total=invoice.total if partial else None,
            )
        )
