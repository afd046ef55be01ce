"""`FakePlatform`: the sandbox's books in memory, without HTTP, for unit tests.

It drives the same `SandboxState` the sandbox server does, so it deduplicates, numbers, issues
asynchronously and lists exactly like the real sandbox. Transport-level faults cannot happen in
memory, so a test scripts them: `fake.script("issue", Ambiguous("lost"), after=True)` makes the
next issue call process the invoice and then answer Ambiguous, as a dropped connection would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kaipiao.clock import utcnow
from kaipiao.platform.outcomes import (
    Ambiguous,
    IssueOutcome,
    NotFound,
    QueryOutcome,
    Throttled,
    Unavailable,
)
from kaipiao.platform.protocol import (
    FILE_KINDS,
    FilesOutcome,
    InvoiceFile,
    InvoiceFiles,
    ListOutcome,
    PlatformInvoice,
    RedRequest,
)
from kaipiao.sandbox.state import SandboxState

Injected = Ambiguous | Unavailable | Throttled


@dataclass(frozen=True, slots=True)
class _Scripted:
    outcome: Injected
    after: bool  # True: process the call first, then answer with `outcome` (a lost answer)


class FakePlatform:
    """An in-memory `TaxPlatform` over a `SandboxState`."""

    def __init__(
        self, state: SandboxState | None = None, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.state = state or SandboxState()
        self.clock = clock
        self._script: dict[str, deque[_Scripted]] = {}
        self.closed = False

    def script(self, operation: str, outcome: Injected, *, after: bool = False) -> None:
        """Queue a fault for the next call of `operation` (issue, red, query, list, files)."""
        self._script.setdefault(operation, deque()).append(_Scripted(outcome, after))

    def _next_fault(self, operation: str) -> _Scripted | None:
        queue = self._script.get(operation)
        return queue.popleft() if queue else None

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        fault = self._next_fault("issue")
        if fault is not None and not fault.after:
            self.state.calls[f"issue:{type(fault.outcome).__name__.lower()}"] += 1
            return fault.outcome
        outcome = self.state.issue(invoice, self.clock())
        self.state.calls[f"issue:{type(outcome).__name__.lower()}"] += 1
        return fault.outcome if fault is not None else outcome

    async def issue_red(self, request: RedRequest) -> IssueOutcome:
        fault = self._next_fault("red")
        if fault is not None and not fault.after:
            return fault.outcome
        outcome = self.state.issue_red(request, self.clock())
        self.state.calls[f"red:{type(outcome).__name__.lower()}"] += 1
        return fault.outcome if fault is not None else outcome

    async def query(
        self, serial_no: str, *, seller_region: str | None = None,
        seller_tax_id: str | None = None,
    ) -> QueryOutcome:  # fmt: skip
        fault = self._next_fault("query")
        if fault is not None and not isinstance(fault.outcome, Ambiguous):
            return fault.outcome
        outcome = self.state.query(serial_no, self.clock())
        self.state.calls[f"query:{type(outcome).__name__.lower()}"] += 1
        return outcome

    async def list_issued(
        self, seller_tax_id: str, issued_from: datetime, issued_to: datetime, page: int = 1
    ) -> ListOutcome:
        fault = self._next_fault("list")
        if fault is not None and not isinstance(fault.outcome, Ambiguous):
            return fault.outcome
        return self.state.list_issued(seller_tax_id, issued_from, issued_to, page, self.clock())

    async def fetch_files(
        self, invoice_number: str, *, serial_no: str, seller_tax_id: str,
        seller_region: str | None = None,
    ) -> FilesOutcome:  # fmt: skip
        fault = self._next_fault("files")
        if fault is not None and not isinstance(fault.outcome, Ambiguous):
            return fault.outcome
        made = self.state.files(invoice_number, self.clock())
        if made is None:
            return NotFound()
        return InvoiceFiles(tuple(InvoiceFile(kind, made[kind]) for kind in FILE_KINDS))

    async def aclose(self) -> None:
        self.closed = True
