"""The fault gate: every call to the sandbox platform, on either front, passes through it.

Order of effects on a call: outage (hang) or region down → quota (429) → latency → failure
(503, 500, or reset before processing) → processing → ambiguous (issued, then the connection is
dropped or the answer held back). The sandbox protocol (`sandbox/server.py`) and the Nuonuo
front (`sandbox/nuonuo_front.py`) both call `FaultGate.call`, so the same profile misbehaves the
same way whichever protocol a client speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kaipiao.platform.outcomes import Duplicate, Issued, Pending, QueryOutcome, Rejected
from kaipiao.sandbox.http1 import Request, Response, json_response
from kaipiao.sandbox.state import SandboxState

HANG_LIMIT_S = 600.0
Outcome = Issued | Duplicate | Pending | Rejected


def problem(status: int, code: str, message: str, **extra: Any) -> Response:
    """A sandbox-protocol error answer."""
    return json_response({"code": code, "message": message, **extra}, status=status)


class FaultGate:
    """Applies the state's current faults around one platform operation."""

    def __init__(self, state: SandboxState, clock: Callable[[], datetime]) -> None:
        self.state = state
        self.clock = clock
        self.generation = 0  # bumped by a reset: calls held from before it are dropped
        self._changed = asyncio.Event()

    def faults_changed(self) -> None:
        """Wake every held call: an outage may have ended."""
        self._changed.set()
        self._changed = asyncio.Event()

    def reset(self) -> None:
        self.generation += 1

    async def _hold(self, limit_s: float) -> None:
        """Wait until the faults change (an outage ends), at most `limit_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=limit_s)

    async def call(
        self,
        request: Request,
        endpoint: str,
        seller: str | None,
        region: str | None,
        operation: Callable[[datetime], Outcome | QueryOutcome],
        *,
        mutating: bool,
    ) -> tuple[Outcome | QueryOutcome | None, Response | None]:
        """Run `operation` as the faults allow: its outcome, or the error answer instead."""
        state = self.state
        faults = state.faults
        generation = self.generation
        if faults.outage == "refuse":
            state.calls[f"{endpoint}:outage"] += 1
            request.drop()
        while faults.outage == "hang" or (region is not None and region in faults.down_regions):
            state.calls[f"{endpoint}:hang"] += 1
            await self._hold(HANG_LIMIT_S)
            if faults is state.faults:
                return None, problem(503, "outage", "the platform is down")
            faults = state.faults
        if seller is not None:
            retry_after = state.throttle(seller, self.clock())
            if retry_after is not None:
                state.calls[f"{endpoint}:throttled"] += 1
                response = problem(429, "throttled", "seller quota exceeded")
                response.headers["Retry-After"] = f"{max(1, round(retry_after))}"
                response.headers["X-Retry-After-Ms"] = f"{retry_after * 1000:.0f}"
                return None, response
        delay = faults.call_latency_s(state.rng, region)
        if delay > 0:
            await asyncio.sleep(delay)
        if generation != self.generation:
            request.drop()  # the platform was reset while this call waited
        if state.rng.random() < faults.failure_rate:
            kind = state.rng.choice(faults.failure_kinds)
            state.calls[f"{endpoint}:failure_{kind}"] += 1
            if kind == "reset":
                request.drop()
            return None, problem(int(kind), "platform_error", f"injected {kind}")
        outcome = operation(self.clock())
        state.calls[f"{endpoint}:{type(outcome).__name__.lower()}"] += 1
        if (
            mutating
            and isinstance(outcome, Issued | Pending)
            and state.rng.random() < faults.ambiguous_rate
        ):
            state.calls[f"{endpoint}:ambiguous_{faults.ambiguous_mode}"] += 1
            if faults.ambiguous_mode == "drop":
                request.drop()
            await asyncio.sleep(faults.ambiguous_delay_s)
        return outcome, None
