"""What a platform call can come to. Expected platform behaviour is a value, never an exception.

- Issued: the invoice exists with this number. Done.
- Duplicate: this serial was issued before; here is its number. Done: adopt the number.
- Pending: accepted, final later. Poll `query`.
- Rejected: refused for good (validation, final failure). The invoice becomes `rejected`.
- Throttled: over quota, nothing was done. Retry after `retry_after_s`.
- Unavailable: certainly not processed (connection refused, 503, pool full). Retry with backoff.
- Ambiguous: sent, no usable answer; it may have been issued. Query by serial before resending.
- NotFound: a query found nothing under that serial. Safe to (re)submit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Issued:
    invoice_number: str
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class Duplicate:
    invoice_number: str
    issued_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    poll_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Throttled:
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Unavailable:
    reason: str
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Ambiguous:
    reason: str


@dataclass(frozen=True, slots=True)
class NotFound:
    pass


IssueOutcome = Issued | Duplicate | Pending | Rejected | Throttled | Unavailable | Ambiguous
QueryOutcome = Issued | Pending | Rejected | NotFound | Throttled | Unavailable
