"""The per-seller rate limit shared by replicas through Redis (127.0.0.1:6379): two limiters,
as two replicas would hold, let through no more than one bucket's worth together."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio

from kaipiao.store.rate_limit import LocalRateLimiter, RedisRateLimiter, rate_limiter_for

URL = "redis://127.0.0.1:6379/0"


async def test_two_replicas_share_one_bucket() -> None:
    key = f"test-{uuid.uuid4().hex}"
    replicas = [RedisRateLimiter(redis.asyncio.Redis.from_url(URL), 0.001, 10, lease=3)
                for _ in range(2)]  # fmt: skip
    try:
        admitted = 0
        for n in range(60):
            if await replicas[n % 2].acquire(key) is None:
                admitted += 1
        assert 1 <= admitted <= 10  # one bucket of 10, never 2 × 10
        local = [LocalRateLimiter(0.001, 10) for _ in range(2)]
        per_process = sum([await local[n % 2].acquire(key) is None for n in range(60)])
        assert per_process == 20  # what per-process limits let through: the finding
    finally:
        for limiter in replicas:
            await limiter.aclose()


async def test_the_limit_falls_back_to_the_process_when_redis_is_down() -> None:
    limiter = rate_limiter_for("redis://127.0.0.1:1/0", 0.001, 3)
    try:
        results = [await limiter.acquire("seller") for _ in range(5)]
        assert results[:3] == [None, None, None] and all(r is not None for r in results[3:])
        assert isinstance(limiter, RedisRateLimiter) and limiter.fallbacks == 5
    finally:
        await limiter.aclose()


def test_no_url_means_a_local_limiter() -> None:
    assert isinstance(rate_limiter_for(None, 1.0, 1), LocalRateLimiter)


@pytest.mark.parametrize("lease", [1, 50])
async def test_a_lease_never_exceeds_the_burst(lease: int) -> None:
    limiter = RedisRateLimiter(redis.asyncio.Redis.from_url(URL), 0.001, 4, lease=lease)
    try:
        key = f"test-{uuid.uuid4().hex}"
        assert sum([await limiter.acquire(key) is None for _ in range(10)]) == 4
    finally:
        await limiter.aclose()
