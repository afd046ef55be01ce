"""Every fault knob of the sandbox, seen through HttpPlatform as kaipiao will see it.

No fixed sleep synchronises with the sandbox and no time window bounds a call from above: a fault
that starts or ends is polled for with a deadline, and latency is checked from below only (a
loaded machine makes calls slower, never faster).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from kaipiao.platform.http import HttpPlatform, HttpSettings
from kaipiao.platform.outcomes import (
    Ambiguous,
    Duplicate,
    Issued,
    NotFound,
    Throttled,
    Unavailable,
)
from tests.factories import platform_invoice
from tests.processes import Running, start_sandbox

DEADLINE_S = 20.0


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `probe` until it holds, or fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not await probe():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.05)


async def put_faults(sandbox: Running, spec: dict) -> dict:  # type: ignore[type-arg]
    async with httpx.AsyncClient() as client:
        answer = await client.put(f"{sandbox.url}/_sandbox/faults", json=spec)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


async def stats(sandbox: Running) -> dict:  # type: ignore[type-arg]
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{sandbox.url}/_sandbox/stats")).json()  # type: ignore[no-any-return]


async def test_fixed_latency(sandbox: Running, http_platform: HttpPlatform) -> None:
    await put_faults(sandbox, {"latency": {"kind": "fixed", "mean_ms": 300}})
    started = time.monotonic()
    assert isinstance(await http_platform.issue(platform_invoice()), Issued)
    assert time.monotonic() - started >= 0.3


async def test_lognormal_and_pareto_latency_are_applied(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    # Ten calls in a row: lognormal with mean 100 ms (sigma 0.3: a draw under 40 ms is 1 in 10^4)
    # and Pareto with a 50 ms floor both add at least 0.4 s.
    for latency in (
        {"kind": "lognormal", "mean_ms": 100, "sigma": 0.3},
        {"kind": "pareto", "min_ms": 50, "alpha": 2.0, "cap_ms": 400},
    ):
        await put_faults(sandbox, {"latency": latency})
        started = time.monotonic()
        outcomes = [await http_platform.issue(platform_invoice()) for _ in range(10)]
        assert all(isinstance(o, Issued) for o in outcomes)
        assert time.monotonic() - started >= 0.4, latency


async def test_503_is_unavailable_and_nothing_is_issued(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    await put_faults(sandbox, {"failure_rate": 1.0, "failure_kinds": ["503"]})
    invoice = platform_invoice()
    assert isinstance(await http_platform.issue(invoice), Unavailable)
    await put_faults(sandbox, {"failure_rate": 0.0})
    assert await http_platform.query(invoice.serial_no) == NotFound()


async def test_500_and_reset_are_ambiguous(sandbox: Running, http_platform: HttpPlatform) -> None:
    for kind in ("500", "reset"):
        await put_faults(sandbox, {"failure_rate": 1.0, "failure_kinds": [kind]})
        outcome = await http_platform.issue(platform_invoice())
        assert isinstance(outcome, Ambiguous), kind
    counts = (await stats(sandbox))["calls"]
    assert counts["issue:failure_500"] == 1 and counts["issue:failure_reset"] == 1


async def test_failure_rate_is_a_rate(sandbox: Running, http_platform: HttpPlatform) -> None:
    await put_faults(sandbox, {"failure_rate": 0.3, "failure_kinds": ["503"]})
    outcomes = await asyncio.gather(*(http_platform.issue(platform_invoice()) for _ in range(300)))
    failures = sum(isinstance(o, Unavailable) for o in outcomes)
    assert 55 < failures < 125


async def test_ambiguous_drop_issues_then_loses_the_answer(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    await put_faults(sandbox, {"ambiguous_rate": 1.0, "ambiguous_mode": "drop"})
    invoice = platform_invoice()
    assert isinstance(await http_platform.issue(invoice), Ambiguous)
    await put_faults(sandbox, {"ambiguous_rate": 0.0})
    found = await http_platform.query(invoice.serial_no)
    assert isinstance(found, Issued)
    assert isinstance(await http_platform.issue(invoice), Duplicate)


async def test_ambiguous_delay_outlasts_the_client_timeout(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    await put_faults(
        sandbox, {"ambiguous_rate": 1.0, "ambiguous_mode": "delay", "ambiguous_delay_s": 5}
    )
    invoice = platform_invoice()
    outcome = await http_platform.issue(invoice)
    # The client gave up at its read timeout (1 s) rather than wait out the 5 s delay.
    assert isinstance(outcome, Ambiguous) and "Timeout" in outcome.reason, outcome
    assert isinstance(await http_platform.query(invoice.serial_no), Issued)


async def test_quota_answers_429_with_retry_after(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    # A token every 10 s: the bucket cannot refill between four calls however slow they are.
    await put_faults(sandbox, {"quota_per_s": 0.1, "quota_burst": 2})
    outcomes = [await http_platform.issue(platform_invoice()) for _ in range(4)]
    assert [type(o) for o in outcomes] == [Issued, Issued, Throttled, Throttled]
    assert all(0 < o.retry_after_s <= 10 for o in outcomes[2:])  # type: ignore[union-attr]
    other_seller = platform_invoice(seller_tax_id="91110108551385082Q")
    assert isinstance(await http_platform.issue(other_seller), Issued)


async def test_refuse_outage_is_unavailable_then_recovers(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    await put_faults(sandbox, {"outage": "refuse", "outage_for_s": 3})
    fresh = HttpPlatform(sandbox.url, HttpSettings(connect_timeout_s=1.0))
    issued: list[object] = []

    async def refused() -> bool:  # the listener closes just after answering the PUT
        return isinstance(await fresh.query("NONE"), Unavailable)

    async def back() -> bool:
        issued.append(await fresh.issue(platform_invoice()))
        return isinstance(issued[-1], Issued)

    try:
        await eventually(refused, "the listener closes")
        assert isinstance(await fresh.issue(platform_invoice()), Unavailable)
        # A kept-alive connection is cut when it is used: the client cannot know what happened.
        assert isinstance(await http_platform.issue(platform_invoice()), Unavailable | Ambiguous)
        await eventually(back, "the platform reopens after outage_for_s")
        assert all(isinstance(o, Unavailable) for o in issued[:-1]), issued
    finally:
        await fresh.aclose()
    assert (await stats(sandbox))["profile"] == "ideal"


async def test_hang_outage_times_out_ambiguously(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    await put_faults(sandbox, {"outage": "hang", "outage_for_s": 0})
    invoice = platform_invoice()
    assert isinstance(await http_platform.issue(invoice), Ambiguous)
    assert isinstance(await http_platform.query(invoice.serial_no), Unavailable)
    await put_faults(sandbox, {"profile": "ideal"})

    # The held call is processed once the platform recovers: the timed-out client's invoice exists.
    async def found() -> bool:
        return isinstance(await http_platform.query(invoice.serial_no), Issued)

    await eventually(found, "the held call is processed")


async def test_one_region_down_others_unaffected(
    sandbox: Running, http_platform: HttpPlatform
) -> None:
    await put_faults(sandbox, {"down_regions": ["44"]})
    down, up = await asyncio.gather(
        http_platform.issue(platform_invoice(region="44")),
        http_platform.issue(platform_invoice(region="31")),
    )
    assert isinstance(down, Ambiguous) and isinstance(up, Issued)


async def test_regional_latency(sandbox: Running, http_platform: HttpPlatform) -> None:
    await put_faults(sandbox, {"profile": "regional"})

    async def timed(region: str) -> float:
        started = time.monotonic()
        assert isinstance(await http_platform.issue(platform_invoice(region=region)), Issued)
        return time.monotonic() - started

    same, cross = await asyncio.gather(timed("31"), timed("44"))
    # From below only: 150–220 ms at home, 780–920 ms across provinces, in parallel.
    assert same >= 0.15 and cross >= 0.78 and cross > same


async def test_connection_refused_is_not_ambiguous() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    platform = HttpPlatform(f"http://127.0.0.1:{port}")
    try:
        assert isinstance(await platform.issue(platform_invoice()), Unavailable)
        assert isinstance(await platform.query("X1"), Unavailable)
    finally:
        await platform.aclose()


async def test_restarted_sandbox_remembers_what_it_issued(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.jsonl"
    first = start_sandbox("--profile", "ideal", state=state)
    invoice = platform_invoice()
    try:
        platform = HttpPlatform(first.url)
        issued = await platform.issue(invoice)
        await platform.aclose()
    finally:
        first.kill()
    second = start_sandbox("--profile", "ideal", state=state)
    try:
        platform = HttpPlatform(second.url)
        assert await platform.query(invoice.serial_no) == issued
        assert isinstance(await platform.issue(invoice), Duplicate)
        await platform.aclose()
    finally:
        second.stop()


async def test_profile_and_seed_at_start(tmp_path: Path) -> None:
    running = start_sandbox("--profile", "throttled", "--seed", "9")
    try:
        async with httpx.AsyncClient() as client:
            faults = (await client.get(f"{running.url}/_sandbox/faults")).json()
        assert faults["profile"] == "throttled" and faults["quota_per_s"] == 20.0
    finally:
        running.stop()
