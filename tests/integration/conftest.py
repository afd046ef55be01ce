from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kaipiao.platform.fake import FakePlatform
from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.platform.protocol import TaxPlatform
from kaipiao.sandbox.faults import build_faults
from tests.processes import Running, start_sandbox


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[Running]:
    running = start_sandbox("--profile", "ideal", "--seed", "1")
    yield running
    running.stop()


@pytest.fixture
def sandbox(sandbox_process: Running) -> Running:
    """The shared sandbox process, reset to an empty, fault-free platform."""
    httpx.post(f"{sandbox_process.url}/_sandbox/reset", params={"seed": "1"}).raise_for_status()
    return sandbox_process


class Harness:
    """One platform under test plus the controls a test needs, for the fake and the sandbox."""

    def __init__(self, platform: TaxPlatform, sandbox: Running | None, fake: FakePlatform | None):
        self.platform = platform
        self.sandbox = sandbox
        self.fake = fake
        self.now = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

    def clock(self) -> datetime:
        return self.now

    async def set_faults(self, spec: dict[str, Any]) -> None:
        if self.fake is not None:
            self.fake.state.faults = build_faults(spec, self.fake.state.faults)
            return
        assert self.sandbox is not None
        async with httpx.AsyncClient() as client:
            answer = await client.put(f"{self.sandbox.url}/_sandbox/faults", json=spec)
            answer.raise_for_status()

    async def advance(self, seconds: float) -> None:
        if self.fake is not None:
            self.now += timedelta(seconds=seconds)
        else:
            await asyncio.sleep(seconds)

    async def stats(self) -> dict[str, Any]:
        if self.fake is not None:
            return self.fake.state.stats(self.now)
        assert self.sandbox is not None
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.sandbox.url}/_sandbox/stats")).json()  # type: ignore[no-any-return]


@pytest.fixture(params=["fake", "sandbox"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "fake":
        fake = FakePlatform()
        harness = Harness(fake, None, fake)
        fake.clock = harness.clock
    else:
        running = request.getfixturevalue("sandbox")
        platform = HttpPlatform(running.url, HttpSettings(read_timeout_s=2.0))
        harness = Harness(platform, running, None)
    yield harness
    await harness.platform.aclose()


@pytest.fixture
async def http_platform(sandbox: Running) -> AsyncIterator[HttpPlatform]:
    platform = HttpPlatform(sandbox.url, HttpSettings(read_timeout_s=1.0, connect_timeout_s=1.0))
    yield platform
    await platform.aclose()
