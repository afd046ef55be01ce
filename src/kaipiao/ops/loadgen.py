"""Load generator: invoice requests against any kaipiao (or look-alike) URL, open or closed loop.

Open loop sends on a schedule (`rate(elapsed)` requests/s) whether or not earlier requests have
answered, as real callers do; a slow server then shows as latency and timeouts, never as a
politely lower rate (the coordinated-omission trap of closed-loop tools). Closed loop keeps
`concurrency` requests outstanding, for finding a server's ceiling.

Every request carries a fresh `order_id` and is recorded as a `Sample`; a request that gets no
answer within `timeout_s` is a timeout (status 0), one that cannot connect an error (status -1).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

TIMEOUT = 0
CONNECT_ERROR = -1
MAX_OUTSTANDING = 20_000  # an open loop stops adding requests past this many unanswered

Progress = Callable[[float, int, int], None]  # (elapsed s, sent, answered)


def invoice_body(order_id: str) -> dict[str, object]:
    """A valid `POST /v1/invoices` body: one consulting line at 6% (priced by the server)."""
    return {
        "order_id": order_id,
        "invoice_type": "normal",
        "buyer": {"name": "上海某某科技有限公司", "tax_id": "91440300MA5G9GK78Y"},
        "lines": [{"name": "咨询服务", "tax_code": "3040201990000000000", "quantity": "2",
                   "unit_price": "150.00", "tax_rate": "0.06", "unit": "次"}],
    }  # fmt: skip


@dataclass(slots=True)
class Sample:
    sent_at: float  # seconds since the run started
    latency_s: float
    status: int  # the HTTP status, TIMEOUT or CONNECT_ERROR
    order_id: str
    seller: int  # index into the target's API keys

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    api_keys: tuple[str, ...]
    timeout_s: float = 5.0
    order_prefix: str = "L"


@dataclass(slots=True)
class Summary:
    sent: int
    ok: int
    statuses: Counter[int]
    seconds: float
    latencies: list[float] = field(repr=False)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 < q ≤ 1) of `values`; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summarize(samples: list[Sample], seconds: float) -> Summary:
    """Counts by status and latency of the answered requests (timeouts and errors excluded)."""
    answered = [s.latency_s for s in samples if s.status > 0]
    return Summary(len(samples), sum(1 for s in samples if s.ok),
                   Counter(s.status for s in samples), seconds, answered)  # fmt: skip


class LoadGenerator:
    """Sends invoice requests to `target`; `samples` collects every answer."""

    def __init__(self, target: Target, progress: Progress | None = None) -> None:
        self.target = target
        self.progress = progress
        self.samples: list[Sample] = []
        self.sent = 0
        self.ok = 0  # answered 2xx so far (progress reads it every second: no rescans)
        self._started = 0.0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadGenerator:
        timeout = aiohttp.ClientTimeout(total=self.target.timeout_s)
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        self._started = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    async def send_one(self) -> Sample:
        assert self._session is not None, "use `async with LoadGenerator(…)`"
        n = self.sent
        self.sent += 1
        seller = n % len(self.target.api_keys)
        order_id = f"{self.target.order_prefix}-{n}"
        headers = {"Authorization": f"Bearer {self.target.api_keys[seller]}",
                   "Content-Type": "application/json"}  # fmt: skip
        data = json.dumps(invoice_body(order_id), ensure_ascii=False).encode()
        sent_at = self.elapsed
        started = time.monotonic()
        try:
            async with self._session.post(
                f"{self.target.url}/v1/invoices", data=data, headers=headers
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            status = TIMEOUT
        except aiohttp.ClientError:
            status = CONNECT_ERROR
        sample = Sample(sent_at, time.monotonic() - started, status, order_id, seller)
        self.samples.append(sample)
        self.ok += sample.ok
        return sample

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.elapsed, self.sent, len(self.samples))

    async def open_loop(self, rate: Callable[[float], float], duration_s: float) -> None:
        """Send at `rate(elapsed)` requests/s for `duration_s`, then wait for the answers."""
        tasks: set[asyncio.Task[Sample]] = set()
        begin = self.elapsed
        next_at = begin
        last_report = 0.0
        while (now := self.elapsed) < begin + duration_s:
            if next_at > now:
                await asyncio.sleep(min(next_at - now, 0.05))
            else:
                if len(tasks) < MAX_OUTSTANDING:
                    task = asyncio.create_task(self.send_one())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                next_at += 1.0 / max(rate(now - begin), 1e-3)
                if (
                    next_at < now - 1.0
                ):  # the loop fell behind (a stalled process): no catch-up burst
                    next_at = now
            if now - last_report >= 0.25:
                last_report = now
                self._report()
        while tasks:
            await asyncio.wait(set(tasks), timeout=0.25)
            self._report()
        self._report()

    async def closed_loop(self, concurrency: int, duration_s: float) -> None:
        """Keep `concurrency` requests outstanding for `duration_s`."""
        end = self.elapsed + duration_s

        async def lane() -> None:
            while self.elapsed < end:
                await self.send_one()

        async def report() -> None:
            while self.elapsed < end:
                self._report()
                await asyncio.sleep(0.25)

        reporter = asyncio.create_task(report())
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        reporter.cancel()
        self._report()
