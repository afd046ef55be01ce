"""The issuing decision, row by row: every outcome type in every phase, fresh and exhausted.

`decide` is pure, so each row of the retry table is checked here without a database; the
integration tests (tests/integration/test_engine_fake.py, test_engine_sandbox.py) check that the
worker applies it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kaipiao.domain.lifecycle import TRANSITIONS, Status
from kaipiao.engine.decide import PENDING_PATIENCE, Attempt, Phase, decide
from kaipiao.engine.retry import CLASSES, RetryPolicy
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
    Unavailable,
)

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=30)  # a bound an earlier attempt left, passed
LATER = NOW + timedelta(seconds=20)  # a bound an earlier attempt left, still ahead
POLICY = RetryPolicy(max_attempts=5, max_age=timedelta(hours=1))
SETTLE_S = 60.0
FRESH = 2  # attempts: a retry, well inside the budget
SPENT = POLICY.max_attempts  # attempts: the budget is used up

ISSUED = Issued("26312000000000000001", NOW - timedelta(seconds=1))
KEEP = "keep"  # resend_after stays what earlier attempts left
TIGHTEN = "tighten"  # resend_after = now + settle_s
CLAIM = "claim"  # resend_after is not written: the claim's bound stands


@dataclass(frozen=True)
class Row:
    outcome: IssueOutcome | QueryOutcome
    phase: Phase
    attempts: int
    status: Status | str  # "previous": back to the status before the claim
    event: str
    resend: str | None  # KEEP, TIGHTEN, CLAIM, or None when the row sets no retry bound
    retry_metric: bool
    charged: bool = True
    previous: Status = Status.QUEUED
    resend_after: datetime = EARLIER


ROWS: dict[str, Row] = {
    # done: issued with the platform's number, whatever the phase or the attempts
    "issued on submit": Row(ISSUED, Phase.SUBMIT, 1, Status.ISSUED, "issued", None, False),
    "issued on query": Row(ISSUED, Phase.QUERY, FRESH, Status.ISSUED, "issued", None, False),
    "issued past budget": Row(ISSUED, Phase.QUERY, SPENT, Status.ISSUED, "issued", None, False),
    "duplicate": Row(Duplicate("26312000000000000002"), Phase.SUBMIT, 1, Status.ISSUED,
                     "issued", None, False),
    # pending: keep polling; only far past the budget does it need a hand
    "pending on submit": Row(Pending(2.0), Phase.SUBMIT, 1, Status.ISSUING, "pending", CLAIM,
                             False),
    "pending on query": Row(Pending(None), Phase.QUERY, SPENT, Status.ISSUING, "pending", KEEP,
                            False),
    "pending for ever": Row(Pending(None), Phase.QUERY, SPENT * PENDING_PATIENCE + 1,
                            Status.ATTENTION, "attention", None, False),
    # final: refused on submit; on a query the serial failed there, so it is sent again
    "rejected on submit": Row(Rejected("E1", "bad buyer"), Phase.SUBMIT, 1, Status.REJECTED,
                              "rejected", None, False),
    "rejected past budget": Row(Rejected("E1", "bad"), Phase.SUBMIT, SPENT, Status.REJECTED,
                                "rejected", None, False),
    "failed on query": Row(Rejected("E9", "failed"), Phase.QUERY, FRESH, Status.QUEUED, "retry",
                           KEEP, True),
    "failed on query, spent": Row(Rejected("E9", "failed"), Phase.QUERY, SPENT,
                                  Status.ATTENTION, "attention", None, True),
    # wait: back where it was, attempt not charged, never exhausted
    "throttled from queued": Row(Throttled(3.0), Phase.SUBMIT, FRESH, "previous", "throttled",
                                 KEEP, True, charged=False),
    "throttled from issuing": Row(Throttled(3.0), Phase.QUERY, SPENT, "previous", "throttled",
                                  KEEP, True, charged=False, previous=Status.ISSUING),
    # safe: nothing was done on submit (queued again); on a query still unconfirmed (issuing)
    "unavailable on submit": Row(Unavailable("503"), Phase.SUBMIT, FRESH, Status.QUEUED, "retry",
                                 KEEP, True),
    "unavailable on query": Row(Unavailable("503"), Phase.QUERY, FRESH, Status.ISSUING, "retry",
                                KEEP, True),
    "unavailable, spent": Row(Unavailable("503"), Phase.SUBMIT, SPENT, Status.ATTENTION,
                              "attention", None, True),
    # verify: may have been issued, so query before anything is resent
    "ambiguous on submit": Row(Ambiguous("ReadTimeout"), Phase.SUBMIT, 1, Status.ISSUING,
                               "retry", TIGHTEN, True),
    "ambiguous on query": Row(Ambiguous("reset"), Phase.QUERY, FRESH, Status.ISSUING, "retry",
                              KEEP, True),
    "ambiguous, spent": Row(Ambiguous("reset"), Phase.SUBMIT, SPENT, Status.ATTENTION,
                            "attention", None, True),
    # resend: a not-found before every earlier send has settled is not trusted yet
    "not found too early": Row(NotFound(), Phase.QUERY, FRESH, Status.ISSUING, "unconfirmed",
                               KEEP, False, charged=False, previous=Status.ISSUING,
                               resend_after=LATER),
}  # fmt: skip


def run(row: Row, *, age: timedelta = timedelta(minutes=1), seed: int = 7) -> Any:
    attempt = Attempt(row.phase, row.attempts, age, row.previous, row.resend_after)
    return decide(
        row.outcome, attempt, policy=POLICY, now=NOW, rng=random.Random(seed), settle_s=SETTLE_S
    )


@pytest.mark.parametrize("name", list(ROWS))
def test_each_row_of_the_retry_table(name: str) -> None:
    row = ROWS[name]
    settled = run(row)
    expected = row.previous if row.status == "previous" else row.status
    assert settled.status is expected
    assert settled.event == row.event
    assert (settled.retry_reason is not None) is row.retry_metric
    # An uncharged answer gives the attempt back; a charged one leaves the claim's count.
    assert ("attempts" in settled.fields) is not row.charged
    if not row.charged:
        assert settled.fields["attempts"] == row.attempts - 1
    bound = settled.fields.get("resend_after", CLAIM)
    if row.resend == KEEP:
        assert bound == row.resend_after
    elif row.resend == TIGHTEN:
        assert bound == NOW + timedelta(seconds=SETTLE_S)
    elif row.resend == CLAIM:
        assert bound == CLAIM
    # Whatever the decision, the worker can write it: issuing → target is in the lifecycle.
    assert settled.status is Status.ISSUING or settled.status in TRANSITIONS[Status.ISSUING]


def test_every_outcome_type_has_a_row() -> None:
    covered = {type(row.outcome) for row in ROWS.values()}
    assert covered == set(CLASSES)


@pytest.mark.parametrize(
    "name", [n for n, r in ROWS.items() if r.status not in (Status.ISSUED, Status.REJECTED)]
)
def test_the_finished_and_the_waiting_carry_the_right_fields(name: str) -> None:
    row = ROWS[name]
    settled = run(row)
    if settled.status is Status.ATTENTION:
        assert settled.fields["error_code"] == "retries_exhausted"
        assert settled.fields["next_attempt_at"] is None
        assert settled.payload["reason"]
    else:  # tried again later, never earlier than now
        assert settled.fields["next_attempt_at"] >= NOW


def test_issued_takes_the_platforms_number_and_time_and_clears_the_error() -> None:
    settled = run(ROWS["issued on query"])
    assert settled.fields["invoice_number"] == ISSUED.invoice_number
    assert settled.fields["issued_at"] == ISSUED.issued_at
    assert settled.fields["error_code"] is None
    assert settled.payload["invoice_number"] == ISSUED.invoice_number
    # A duplicate without a time is issued "now".
    assert run(ROWS["duplicate"]).fields["issued_at"] == NOW


def test_rejected_keeps_the_platforms_code() -> None:
    settled = run(ROWS["rejected on submit"])
    assert settled.fields["error_code"] == "E1"
    assert settled.fields["error_message"] == "bad buyer"
    assert settled.payload["code"] == "E1"


def test_throttled_waits_exactly_retry_after() -> None:
    settled = run(ROWS["throttled from queued"])
    assert settled.fields["next_attempt_at"] == NOW + timedelta(seconds=3.0)


def test_pending_follows_the_platforms_hint() -> None:
    settled = run(ROWS["pending on submit"])
    delay = (settled.fields["next_attempt_at"] - NOW).total_seconds()
    assert 2.0 <= delay <= 2.2


def test_backoff_is_full_jitter_under_the_cap() -> None:
    row = ROWS["unavailable on submit"]
    cap = min(POLICY.cap_s, POLICY.base_s * 2 ** (row.attempts - 1))
    delays = {run(row, seed=seed).payload["retry_in_s"] for seed in range(50)}
    assert all(0 <= d <= cap for d in delays)
    assert len(delays) > 40  # jittered, not one fixed delay


def test_age_exhausts_like_attempts() -> None:
    old = POLICY.max_age + timedelta(seconds=1)
    assert run(ROWS["unavailable on submit"], age=old).status is Status.ATTENTION
    assert run(ROWS["ambiguous on submit"], age=old).status is Status.ATTENTION
    # An answer that finishes the invoice still finishes it, however old.
    assert run(ROWS["issued on query"], age=old).status is Status.ISSUED
    assert run(ROWS["throttled from queued"], age=old).event == "throttled"


def test_not_found_waits_until_every_earlier_send_has_settled() -> None:
    settled = run(ROWS["not found too early"])
    assert settled.fields["next_attempt_at"] == LATER
    assert settled.payload == {"outcome": "NotFound", "resend_after": LATER}
