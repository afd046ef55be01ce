"""Retry policy as data: what each platform outcome means, and when to try again.

| outcome     | class    | next step                                                      |
|-------------|----------|----------------------------------------------------------------|
| Issued      | done     | issued                                                         |
| Duplicate   | done     | issued with the platform's number (the serial was issued)      |
| Pending     | pending  | stay `issuing`, poll with backoff                              |
| Rejected    | final    | `rejected` with the platform's code (on submit)                |
| Throttled   | wait     | back to `queued` after Retry-After; no attempt is charged      |
| Unavailable | safe     | back to `queued` with backoff: the platform did nothing        |
| Ambiguous   | verify   | stay `issuing`; query by serial before anything is resent      |
| NotFound    | resend   | (a query's answer) the serial has no invoice: submit now       |

Backoff is exponential with full jitter: U(0, min(cap, base · 2^attempt)). After `max_attempts`
charged attempts, or once an invoice is older than `max_age`, it goes to `attention`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

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


class OutcomeClass(Enum):
    DONE = "done"
    PENDING = "pending"
    FINAL = "final"
    WAIT = "wait"
    SAFE = "safe"
    VERIFY = "verify"
    RESEND = "resend"


CLASSES: dict[type, OutcomeClass] = {
    Issued: OutcomeClass.DONE,
    Duplicate: OutcomeClass.DONE,
    Pending: OutcomeClass.PENDING,
    Rejected: OutcomeClass.FINAL,
    Throttled: OutcomeClass.WAIT,
    Unavailable: OutcomeClass.SAFE,
    Ambiguous: OutcomeClass.VERIFY,
    NotFound: OutcomeClass.RESEND,
}


def classify(outcome: IssueOutcome | QueryOutcome) -> OutcomeClass:
    return CLASSES[type(outcome)]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 0.5
    cap_s: float = 60.0
    poll_base_s: float = 1.0
    poll_cap_s: float = 30.0
    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=24)

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform between 0 and the capped exponential for this attempt."""
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1)))

    def poll_s(self, polls: int, hint: float | None, rng: random.Random) -> float:
        """When to ask again about a pending invoice: the platform's hint, else backoff."""
        if hint is not None and hint > 0:
            return min(self.poll_cap_s, hint) + rng.uniform(0, 0.2)
        return float(min(self.poll_cap_s, self.poll_base_s * 2 ** max(0, polls - 1))) * rng.uniform(
            0.5, 1.0
        )

    def exhausted(self, attempts: int, age: timedelta) -> bool:
        return attempts >= self.max_attempts or age >= self.max_age
