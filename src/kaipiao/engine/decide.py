"""The issuing decision: what happens to an invoice after one platform answer. Pure.

`decide` maps (outcome × phase × attempts × age × policy × clock) to a `Settlement`: the next
status, the fields to write and the ledger event. It reads no database and calls nothing, so
every row of the retry table (`engine/retry.py`) is tested on its own
(`tests/unit/test_decide.py`); the worker applies the settlement in one fenced write
(`engine/record.py`).

| class    | phase  | not exhausted                               | exhausted               |
|----------|--------|---------------------------------------------|-------------------------|
| done     | any    | `issued` with the platform's number         | same                    |
| pending  | any    | stay `issuing`, poll (platform hint/backoff)| `attention` past 4×max  |
| final    | submit | `rejected` with the platform's code         | same                    |
| final    | query  | `queued`: resubmit under the same serial    | `attention`             |
| wait     | any    | previous status after Retry-After, uncharged| same (never exhausts)   |
| safe     | submit | `queued` with backoff: nothing was done     | `attention`             |
| safe     | query  | stay `issuing` with backoff: unconfirmed    | `attention`             |
| verify   | any    | stay `issuing` with backoff: query first    | `attention`             |
| resend   | query  | stay `issuing` until `resend_after`, uncharged (a not-found not yet trusted) |

`resend_after` bounds when a "not found" may be trusted. An attempt that certainly sent nothing
(a query, a refused or throttled send) keeps the earlier bound; an ambiguous send tightens it to
now + `settle_s`, since the recorder is alive and so sent before now; any other send leaves the
bound its claim set (end of lease + `settle_s`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from kaipiao.domain.lifecycle import Status
from kaipiao.engine.retry import OutcomeClass, RetryPolicy, classify
from kaipiao.platform.outcomes import (
    Duplicate,
    Issued,
    IssueOutcome,
    NotFound,
    Pending,
    QueryOutcome,
    Rejected,
    Throttled,
)

PENDING_PATIENCE = 4
"""A pending invoice is polled up to this many times `max_attempts` before it needs a hand."""


class Phase(StrEnum):
    SUBMIT = "submit"  # the invoice was sent (first attempt, or a confirmed not-found)
    QUERY = "query"  # the platform was asked about the serial; nothing was sent


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the engine knows about the claimed invoice when the answer comes back."""

    phase: Phase
    attempts: int  # charged attempts so far, this one included
    age: timedelta  # since the invoice was accepted
    previous: Status  # its status before this claim
    resend_after: datetime | None  # the bound earlier attempts left (None: nothing sent)


@dataclass(frozen=True, slots=True)
class Settlement:
    """The next state of a claimed invoice: status, fields to write, and the ledger event."""

    status: Status
    event: str
    fields: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)
    # The retry metric's reason: set for every answer that neither finished the invoice nor left
    # it pending (an exhausted retry going to `attention` counts too, as it always has).
    retry_reason: str | None = None


def decide(
    outcome: IssueOutcome | QueryOutcome,
    attempt: Attempt,
    *,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
    settle_s: float,
) -> Settlement:
    """The settlement for `outcome`. Backoff delays draw their jitter from `rng`."""
    kind = classify(outcome)
    name = type(outcome).__name__
    summary = {"outcome": name, "phase": attempt.phase.value, "attempt": attempt.attempts}
    if kind is OutcomeClass.RESEND:
        return _unconfirmed(attempt)
    sent_nothing = attempt.phase is Phase.QUERY or kind in (OutcomeClass.SAFE, OutcomeClass.WAIT)
    keep: dict[str, Any] = {"resend_after": attempt.resend_after} if sent_nothing else {}
    if kind is OutcomeClass.VERIFY and attempt.phase is Phase.SUBMIT:
        keep = {"resend_after": now + timedelta(seconds=settle_s)}
    exhausted = policy.exhausted(attempt.attempts, attempt.age)

    if kind is OutcomeClass.DONE:
        assert isinstance(outcome, Issued | Duplicate)
        return Settlement(
            Status.ISSUED, "issued",
            {"invoice_number": outcome.invoice_number, "issued_at": outcome.issued_at or now,
             "error_code": None, "error_message": None, "next_attempt_at": None},
            {**summary, "invoice_number": outcome.invoice_number},
        )  # fmt: skip
    if kind is OutcomeClass.PENDING:
        assert isinstance(outcome, Pending)
        if exhausted and attempt.attempts > policy.max_attempts * PENDING_PATIENCE:
            return _attention("still pending on the platform", summary)
        delay = policy.poll_s(attempt.attempts, outcome.poll_after_s, rng)
        return Settlement(
            Status.ISSUING, "pending",
            {"next_attempt_at": now + timedelta(seconds=delay), **keep}, summary,
        )  # fmt: skip
    if kind is OutcomeClass.FINAL and attempt.phase is Phase.SUBMIT:
        assert isinstance(outcome, Rejected)
        return Settlement(
            Status.REJECTED, "rejected",
            {"error_code": outcome.code, "error_message": outcome.message,
             "next_attempt_at": None},
            {**summary, "code": outcome.code},
        )  # fmt: skip
    if kind is OutcomeClass.WAIT:
        assert isinstance(outcome, Throttled)
        return Settlement(
            attempt.previous, "throttled",
            {"attempts": attempt.attempts - 1,
             "next_attempt_at": now + timedelta(seconds=outcome.retry_after_s), **keep},
            summary, retry_reason=name.lower(),
        )  # fmt: skip
    # Retry: the platform did nothing (SAFE on submit), failed this serial for good on its side
    # (FINAL on query: resubmit under the same serial), or may have issued it (VERIFY, or SAFE on
    # a query: still unconfirmed).
    if exhausted:
        reason = f"{name} after {attempt.attempts} attempts"
        return _attention(reason, summary, retry_reason=name.lower())
    delay = policy.backoff_s(attempt.attempts, rng)
    unconfirmed = kind is OutcomeClass.VERIFY or (
        attempt.phase is Phase.QUERY and kind is OutcomeClass.SAFE
    )
    message = getattr(outcome, "reason", None) or getattr(outcome, "message", None)
    return Settlement(
        Status.ISSUING if unconfirmed else Status.QUEUED, "retry",
        {"next_attempt_at": now + timedelta(seconds=delay), **keep,
         "error_code": name.lower(), "error_message": message},
        {**summary, "retry_in_s": round(delay, 3)}, retry_reason=name.lower(),
    )  # fmt: skip


def _attention(reason: str, summary: dict[str, Any], retry_reason: str | None = None) -> Settlement:
    return Settlement(
        Status.ATTENTION, "attention",
        {"error_code": "retries_exhausted", "error_message": reason, "next_attempt_at": None},
        {**summary, "reason": reason}, retry_reason=retry_reason,
    )  # fmt: skip


def _unconfirmed(attempt: Attempt) -> Settlement:
    """A query found nothing, but an earlier send may still land before `resend_after`: wait
    for it without charging the attempt, and query again then."""
    until = attempt.resend_after
    assert until is not None, "a not-found is only not trusted while an earlier send may land"
    return Settlement(
        Status.ISSUING, "unconfirmed",
        {"attempts": attempt.attempts - 1, "next_attempt_at": until, "resend_after": until},
        {"outcome": NotFound.__name__, "resend_after": until},
    )  # fmt: skip
