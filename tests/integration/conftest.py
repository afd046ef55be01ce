from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.platform.protocol import TaxPlatform
from kaipiao.sandbox.fake import FakePlatform
from kaipiao.sandbox.faults import build_faults
from tests.processes import Running, start_sandbox

# The app the shared sandbox's Nuonuo front accepts (tests/integration/test_nuonuo_engine.py).
NUONUO_APP_KEY, NUONUO_APP_SECRET = "test-app", "test-secret"
NUONUO_APP = ("--nuonuo-app", f"{NUONUO_APP_KEY}:{NUONUO_APP_SECRET}")


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[Running]:
    running = start_sandbox("--profile", "ideal", "--seed", "1", *NUONUO_APP)
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


# -- the HTTP API over a real database ---------------------------------------------------------
from dataclasses import dataclass as _dataclass  # noqa: E402

from kaipiao.api.app import create_app  # noqa: E402
from kaipiao.clock import utcnow  # noqa: E402
from kaipiao.config import Settings  # noqa: E402
from kaipiao.services.sellers import NewSeller, add_seller  # noqa: E402
from kaipiao.store.database import Database  # noqa: E402
from tests.factories import OTHER_SELLER_TAX_ID, SELLER_TAX_ID  # noqa: E402


@_dataclass
class Api:
    client: httpx.AsyncClient
    database: Database
    a: NewSeller
    b: NewSeller
    app: Any

    def auth(self, who: NewSeller | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {(who or self.a).api_key}"}

    async def post(self, body: Any, who: NewSeller | None = None, **headers: str) -> httpx.Response:
        return await self.client.post(
            "/v1/invoices", json=body, headers={**self.auth(who), **headers}
        )


def make_settings(tmp: Any, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp, demo_seller=False, **overrides)


@pytest.fixture
def api_settings(tmp_path: Any) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def api(database: Database, api_settings: Settings) -> AsyncIterator[Api]:
    now = utcnow()
    a = await add_seller(database, name="甲公司", tax_id=SELLER_TAX_ID, now=now, region="31")
    b = await add_seller(database, name="乙公司", tax_id=OTHER_SELLER_TAX_ID, now=now, region="11")
    app = create_app(api_settings, database)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://kaipiao.test") as client:
        yield Api(client, database, a, b, app)
