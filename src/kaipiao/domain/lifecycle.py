"""Invoice statuses and the transitions between them (DESIGN §2), as data.

`attention` is where an invoice waits for an operator; nothing leaves the system silently.
Reconciliation may move `issued` or `rejected` to `attention` when the platform disagrees.
"""

from __future__ import annotations

from enum import StrEnum

from kaipiao.domain.errors import IllegalTransition


class Status(StrEnum):
    QUEUED = "queued"
    ISSUING = "issuing"
    ISSUED = "issued"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    REVERSING = "reversing"
    REVERSED = "reversed"
    ATTENTION = "attention"


class Kind(StrEnum):
    BLUE = "blue"
    RED = "red"


TERMINAL: frozenset[Status] = frozenset(
    {Status.ISSUED, Status.REJECTED, Status.CANCELLED, Status.REVERSED}
)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.ISSUING, Status.CANCELLED, Status.REJECTED, Status.ATTENTION}),
    Status.ISSUING: frozenset({Status.QUEUED, Status.ISSUED, Status.REJECTED, Status.ATTENTION}),
    Status.ISSUED: frozenset({Status.REVERSING, Status.ATTENTION}),
    Status.REVERSING: frozenset({Status.REVERSED, Status.ISSUED, Status.ATTENTION}),
    # Requeue goes to `issuing`, never `queued`: an attention invoice may have reached the
    # platform, so the next worker queries by serial before anything is resent.
    Status.ATTENTION: frozenset(
        {Status.QUEUED, Status.ISSUING, Status.ISSUED, Status.REJECTED, Status.REVERSED}
    ),
    Status.REJECTED: frozenset({Status.ATTENTION}),
    Status.CANCELLED: frozenset({Status.ATTENTION}),  # reconciliation: issued there after all
    Status.REVERSED: frozenset(),
}


def can_transition(source: Status, target: Status) -> bool:
    return target in TRANSITIONS[source]


def ensure_transition(source: Status, target: Status) -> None:
    """Raise IllegalTransition unless `source → target` is in the table."""
    if not can_transition(source, target):
        raise IllegalTransition(f"an invoice cannot go from {source} to {target}")
