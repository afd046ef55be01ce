import random
from datetime import timedelta

import pytest

from kaipiao.engine.breaker import BreakerConfig, BreakerState, CircuitBreaker
from kaipiao.engine.budget import RetryBudget
from kaipiao.engine.limits import AdaptiveLimit
from kaipiao.engine.retry import CLASSES, OutcomeClass, RetryPolicy, classify
from kaipiao.platform.outcomes import (
    Ambiguous,
    Duplicate,
    Issued,
    NotFound,
    Pending,
    Rejected,
    Throttled,
    Unavailable,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_every_outcome_has_exactly_one_class() -> None:
    outcome_types = {
        Issued,
        Duplicate,
        Pending,
        Rejected,
        Throttled,
        Unavailable,
        Ambiguous,
        NotFound,
    }
    assert set(CLASSES) == outcome_types
    assert classify(Ambiguous("x")) is OutcomeClass.VERIFY
    assert classify(Unavailable("x")) is OutcomeClass.SAFE
    assert classify(NotFound()) is OutcomeClass.RESEND


def test_full_jitter_backoff_is_bounded_and_capped() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=8.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        draws = [policy.backoff_s(attempt, rng) for _ in range(200)]
        bound = min(8.0, 0.5 * 2 ** (attempt - 1))
        assert all(0 <= d <= bound for d in draws)
        assert max(draws) > bound * 0.8  # the whole range is used: full jitter
    assert policy.exhausted(12, timedelta(0)) and policy.exhausted(1, timedelta(days=2))
    assert not policy.exhausted(3, timedelta(minutes=5))


def test_poll_interval_follows_the_platform_hint() -> None:
    policy = RetryPolicy(poll_cap_s=30)
    rng = random.Random(2)
    assert 2.0 <= policy.poll_s(1, 2.0, rng) <= 2.2
    assert policy.poll_s(1, 100.0, rng) <= 30.2
    assert 0 < policy.poll_s(3, None, rng) <= 4.0


def test_breaker_opens_on_failure_rate_after_minimum_calls() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(window=10, minimum_calls=5, failure_rate=0.5), clock)
    for _ in range(4):
        assert breaker.allow()
        breaker.record(failed=True, seconds=0.1)
    assert breaker.state is BreakerState.CLOSED  # below the minimum number of calls
    breaker.allow()
    breaker.record(failed=True, seconds=0.1)
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.retry_in_s() == pytest.approx(10.0)


def test_breaker_opens_on_slow_calls_too() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        BreakerConfig(minimum_calls=4, slow_call_rate=0.75, slow_call_s=2.0), clock
    )
    for seconds in (3.0, 3.0, 0.1, 3.0):
        breaker.allow()
        breaker.record(failed=False, seconds=seconds)
    assert breaker.state is BreakerState.OPEN


def test_breaker_half_open_probes_close_or_reopen() -> None:
    clock = Clock()
    config = BreakerConfig(minimum_calls=2, open_for_s=5, probes=2)
    breaker = CircuitBreaker(config, clock)
    for _ in range(2):
        breaker.allow()
        breaker.record(failed=True, seconds=0.1)
    assert breaker.state is BreakerState.OPEN
    clock.now = 5.0
    assert breaker.allow() and breaker.allow() and not breaker.allow()  # two probes only
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(failed=False, seconds=0.1)
    breaker.record(failed=True, seconds=0.1)  # 50% failures: back to open
    assert breaker.state is BreakerState.OPEN and breaker.opened_total == 2
    clock.now = 10.0
    breaker.allow()
    breaker.allow()
    breaker.record(failed=False, seconds=0.1)
    breaker.record(failed=False, seconds=0.1)
    assert breaker.state is BreakerState.CLOSED


def test_retry_budget_limits_retries_to_a_share_of_first_attempts() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.1, cap=100, floor_per_s=0.0, clock=clock)
    budget.tokens = 0
    allowed = 0
    for _ in range(1000):
        budget.first_attempt()
        if budget.try_retry():  # every call fails and wants a retry
            allowed += 1
    assert 95 <= allowed <= 100  # ~10% of calls
    for _ in range(25):
        budget.success()
    assert 50 <= sum(budget.try_retry() for _ in range(60)) <= 51  # successes refill it, 2 each


def test_retry_budget_floor_keeps_a_trickle() -> None:
    clock = Clock()
    budget = RetryBudget(floor_per_s=2.0, clock=clock)
    budget.tokens = 0
    assert not budget.try_retry()
    clock.now = 1.0
    assert budget.try_retry() and budget.try_retry() and not budget.try_retry()


async def test_adaptive_limit_slow_start_then_backs_off_then_grows_slowly() -> None:
    clock = Clock()
    limit = AdaptiveLimit(initial=10, minimum=2, cooldown_s=1.0, window=10, clock=clock)
    for _ in range(10):
        await limit.acquire()
    await limit.release(True)  # busy and fast, in slow start: +1
    assert limit.limit == 11
    await limit.release(False)  # one congested call of ten: a share of 0.1, no cut yet
    assert limit.limit == 11
    await limit.release(False)  # the share reaches 0.19 ≥ 0.15: cut, slow start ends
    assert limit.limit == pytest.approx(8.25) and not limit.slow_start
    await limit.release(False)  # same cooldown window: one cut per burst
    assert limit.limit == pytest.approx(8.25)
    for _ in range(limit.available):
        await limit.acquire()
    before = limit.limit
    await limit.release(True)  # additive increase now
    assert limit.limit == pytest.approx(before + 1 / before)


async def test_adaptive_limit_wakes_waiters_in_order_one_slot_each() -> None:
    import asyncio

    limit = AdaptiveLimit(initial=4, minimum=1, window=1)
    for _ in range(4):
        await limit.acquire()
    order: list[int] = []

    async def waiter(n: int) -> None:
        await limit.acquire()
        order.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == [] and limit.in_flight == 4
    await limit.release(False)  # congested: the limit is cut to 3; nobody fits yet
    await asyncio.sleep(0)
    assert order == [] and int(limit.limit) == 3
    await limit.release(True)  # one slot frees: the first waiter, and only it
    await asyncio.sleep(0)
    assert order == [0] and limit.in_flight == 3
    tasks[2].cancel()  # a waiter that gives up leaves the queue
    await asyncio.sleep(0)
    await limit.release(True)
    await asyncio.sleep(0)
    assert order == [0, 1] and limit.in_flight == 3
    await limit.release(True)
    await asyncio.sleep(0)
    assert order == [0, 1] and limit.in_flight == 2  # nobody left to wake
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_adaptive_limit_keeps_a_slower_platform_busy_and_ignores_a_tails_timeouts() -> None:
    """A platform that slows down by itself needs more calls in flight, not fewer; the rare
    timeouts of a heavy tail are not congestion; a storm of 429s is."""
    clock = Clock()
    limit = AdaptiveLimit(initial=10, minimum=2, cooldown_s=0.0, clock=clock)

    async def calls(n: int, congested_every: int = 0) -> None:
        for i in range(n):
            limit.in_flight = int(limit.limit)  # every slot busy (no waiting: cuts shrink it)
            congested = congested_every > 0 and i % congested_every == 0
            await limit.release(not congested)

    await calls(200)
    settled = limit.limit
    await calls(300)  # the platform itself slows down fivefold: calls answered, not congested
    assert limit.limit >= settled
    await calls(600, congested_every=14)  # 7% of calls time out: a heavy tail
    assert limit.limit >= settled
    await calls(60, congested_every=2)  # half the calls answered 429: congestion
    assert limit.limit < settled / 2


def test_breaker_half_open_with_silent_probes_reopens_and_accepting_reserves_nothing() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerConfig(minimum_calls=2, open_for_s=5, probes=1), clock)
    for _ in range(2):
        breaker.allow()
        breaker.record(failed=True, seconds=0.1)
    assert not breaker.accepting()
    clock.now = 5.0
    assert breaker.accepting() and breaker.accepting()  # peeking reserves no probe
    assert breaker.allow() and not breaker.accepting()  # the one probe is out
    clock.now = 21.0  # the probe never reported
    assert breaker.accepting()
    assert not breaker.allow() and breaker.state is BreakerState.OPEN  # re-armed, not stuck


async def test_adaptive_limit_climbs_back_fast_after_a_deep_cut() -> None:
    clock = Clock()
    limit = AdaptiveLimit(initial=200, minimum=4, cooldown_s=0.0, clock=clock)
    for _ in range(40):  # a hung platform: every call times out, the limit falls to the minimum
        await limit.acquire()
        await limit.release(False)
    assert limit.limit == 4
    for _ in range(200):  # the platform is back: busy, fast calls
        while limit.available:
            await limit.acquire()
        await limit.release(True)
    assert limit.limit >= 100  # slow start again below half the peak, not +1 per round trip


async def test_only_calls_reported_congested_shrink_the_limit() -> None:
    """The limit reads the congested flag, not how many calls end or how fast: a burst of instant
    answers (an outage's refusals, which the worker reports as not congested; see
    tests/integration/test_engine_fake.py) leaves it where it was, and the same burst reported
    congested cuts it to the minimum, one cut per cooldown."""
    clock = Clock()
    limit = AdaptiveLimit(initial=20, minimum=4, cooldown_s=1.0, clock=clock)

    async def burst(n: int, congested: bool) -> None:
        for _ in range(n):
            limit.in_flight = int(limit.limit)  # every slot busy
            clock.now += 0.001  # each call ends a millisecond after the last
            await limit.release(not congested)

    await burst(150, congested=False)
    before = limit.limit
    await burst(300, congested=False)
    assert limit.limit >= before
    busy = limit.limit
    await burst(300, congested=True)  # 0.3 s: within one cooldown, so one cut
    assert limit.limit == pytest.approx(busy * limit.backoff)
    clock.now += 100.0
    for _ in range(20):
        clock.now += limit.cooldown_s
        await burst(1, congested=True)
    assert limit.limit == limit.minimum


def test_incident_levels_follow_the_share_of_affected_sellers() -> None:
    from kaipiao.services.status import incident_level

    assert incident_level(0, 500) == 0  # nobody affected
    assert incident_level(3, 0) == 0  # no active sellers
    assert incident_level(4, 500) == 1  # 0.8%: handled internally
    assert incident_level(5, 500) == 2  # 1%: respond within 2 hours
    assert incident_level(25, 500) == 2  # 5%
    assert incident_level(26, 500) == 3  # 5.2%: respond within 30 minutes
