"""The early warning inside a process: per-second series fed into the warn package's board.

A worker feeds platform latency p95, failure and 429 share per province (from every call its
dispatcher makes, through `WarningObserver`) and the backlog (one indexed count a second); the
API feeds intake per seller group (the seller's province). Once a second `EarlyWarning.tick`
computes the values, feeds the board, lowers what has been quiet for the hold time and notifies.

Where warnings are kept: in the process's heartbeat state (`worker_heartbeats`, written every
5 s), as the breakers and limits already are. They describe a live process's view and vanish with
it, which is what an operator wants from "active warnings"; no table, no migration. Each warning
keeps its own exact `since`, so the 5-s beat delays the display, not the time reported. The
first time each breaker opened is kept beside them, for the drills' lead time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kaipiao.engine.notify import Notifier
from kaipiao.engine.observer import EngineObserver
from kaipiao.warn.online import BoardConfig, Warning, WarningBoard
from kaipiao.warn.telemetry import CallSeries, RateSeries

log = logging.getLogger("kaipiao.warn")


class WarningObserver:
    """An engine observer that also records each platform call for the per-second series."""

    def __init__(self, inner: EngineObserver, calls: CallSeries,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.inner = inner
        self.calls = calls
        self.clock = clock

    def call(self, endpoint: str, region: str, outcome: str, seconds: float) -> None:
        self.inner.call(endpoint, region, outcome, seconds)
        self.calls.record(self.clock(), region, outcome, seconds)

    def retry(self, reason: str) -> None:
        self.inner.retry(reason)

    def issued(self, waited_s: float) -> None:
        self.inner.issued(waited_s)


class EarlyWarning:
    """One process's signals. `calls`, `rates`, `backlog` and `breakers_opened` are optional
    sources; `tick` is called once a second (by `run`, or by a test with its own clock)."""

    def __init__(
        self,
        config: BoardConfig | None = None,
        *,
        notifier: Notifier | None = None,
        calls: CallSeries | None = None,
        rates: RateSeries | None = None,
        backlog: Callable[[], Awaitable[int]] | None = None,
        breakers_opened: Callable[[], dict[str, int]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.board = WarningBoard(config)
        self.notifier = notifier
        self.calls = calls
        self.rates = rates
        self.backlog = backlog
        self.breakers_opened = breakers_opened
        self.clock = clock
        self.first_opened: dict[str, float] = {}
        self.raised_total = 0

    async def tick(self, now: float) -> list[Warning]:
        """Feed this second's values; returns the warnings raised by them."""
        values: dict[str, float] = {}
        counts: dict[str, int] = {}
        if self.calls is not None:
            values |= self.calls.values(now)
            counts = self.calls.counts
        if self.rates is not None:
            values |= self.rates.values(now)
        if self.backlog is not None:
            try:
                values["backlog"] = float(await self.backlog())
            except Exception:
                log.warning("early warning: reading the backlog failed", exc_info=True)
        if self.breakers_opened is not None:
            for region, opened in self.breakers_opened().items():
                if opened and region not in self.first_opened:
                    self.first_opened[region] = now
        raised = [w for signal, value in sorted(values.items())
                  if (w := self.board.observe(signal, now, value, counts.get(signal)))
                  is not None]  # fmt: skip
        lowered = self.board.expire(now)
        for warning in raised:
            self.raised_total += 1
            log.warning("early warning raised: %s = %.4g (baseline %.4g)", warning.signal,
                        warning.value, warning.baseline)  # fmt: skip
        if self.notifier is not None:
            for event, warnings in (("raised", raised), ("lowered", lowered)):
                for warning in warnings:
                    await self.notifier.notify(event, warning)
        return raised

    def report(self) -> dict[str, Any]:
        """What the heartbeat carries: the active warnings and each breaker's first opening."""
        return {
            "warnings": [w.to_json() for w in self.board.active()],
            "breaker_first_open": dict(self.first_opened),
        }

    async def run(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        if self.rates is not None:
            self.rates.start(self.clock())
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                await self.tick(self.clock())
            except Exception:
                log.exception("early warning tick failed")
            next_at += every_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
