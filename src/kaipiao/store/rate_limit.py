"""Rate limits: token buckets, in this process or shared by every replica through Redis.

The interface every caller uses (`RateLimiter`): `await acquire(key)` spends one token of the
bucket named `key` and answers None, or answers the seconds until a token will be there. A
bucket holds up to `burst` tokens and refills at `rate` per second. Two implementations:

- `LocalRateLimiter`: the bucket lives in this process. Right for one process; with N replicas
  a key gets N times its rate.
- `RedisRateLimiter`: the bucket lives in Redis and is updated by one Lua script (atomic on the
  server, with the server's clock, so replicas' clocks do not matter). A replica takes up to
  `lease` tokens per call and spends them locally, so one Redis round trip serves up to `lease`
  requests; tokens it took but did not spend lapse after `LEASE_S`. Every admitted request spent
  a token from the shared bucket, so the replicas together never exceed the limit; at most
  `lease` tokens per replica per second go unused under uneven load. If Redis does not answer,
  the replica falls back to its own bucket (logged, counted in `fallbacks`): a rate limiter
  being down must not stop invoice intake.

`rate_limiter_for(url, …)` picks one from the settings (`KAIPIAO_RATE_LIMIT_URL`); bootstrap and
the API use only that and the interface. Why Redis and not PostgreSQL, and what it costs:
docs/decisions/0005-shared-rate-limit.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("kaipiao.ratelimit")

LEASE_S = 1.0
MAX_BUCKETS = 100_000


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> float | None:
        """None if allowed (one token spent), else seconds until a token is available."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class LocalRateLimiter:
    """A token bucket per key, in this process: `rate` tokens/s, up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float | None:
        """`acquire` without awaiting (the bucket is in memory)."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.clear()  # bounded memory under a flood of distinct keys
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate

    def has_tokens(self, key: str) -> bool:
        """Whether `take(key)` would succeed now (nothing is spent)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return True
        tokens = bucket.tokens + (self.clock() - bucket.stamp) * self.rate
        return tokens >= 1

    async def acquire(self, key: str) -> float | None:
        return self.take(key)

    async def aclose(self) -> None:
        return None


# KEYS[1]: the bucket. ARGV: rate (tokens/s), burst, tokens wanted. Returns {granted, wait_s}.
_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 't', tostring(tokens), 's', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
local wait = 0
if granted == 0 then wait = (1 - tokens) / rate end
return {granted, tostring(wait)}
"""


class RedisRateLimiter:
    """Token buckets shared by every replica, in Redis; see the module docstring."""

    def __init__(
        self,
        client: Any,
        rate: float,
        burst: int,
        *,
        lease: int = 10,
        prefix: str = "kaipiao:rl:",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.rate = rate
        self.burst = burst
        self.lease = max(1, min(lease, burst))
        self.prefix = prefix
        self.clock = clock
        self.fallback = LocalRateLimiter(rate, burst, clock)
        self.fallbacks = 0
        self._held: dict[str, tuple[int, float]] = {}  # key → (tokens, lapse time)
        self._locks: dict[str, asyncio.Lock] = {}
        self._script = client.register_script(_TAKE)

    def _spend(self, key: str) -> bool:
        held, lapse = self._held.get(key, (0, 0.0))
        if held > 0 and self.clock() < lapse:
            self._held[key] = (held - 1, lapse)
            return True
        return False

    async def acquire(self, key: str) -> float | None:
        if self._spend(key):
            return None
        # One refill per key at a time: concurrent requests that find the lease empty wait for
        # it rather than each calling Redis (measured: without this, 32 connections made
        # nearly one call per request and cost a third of intake's throughput).
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > MAX_BUCKETS:
                self._locks.clear()
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            if self._spend(key):
                return None
            return await self._refill(key)

    async def _refill(self, key: str) -> float | None:
        try:
            granted, wait = await self._script(
                keys=[self.prefix + key], args=[self.rate, self.burst, self.lease]
            )
        except Exception as exc:  # any Redis or network failure: limit locally instead
            self.fallbacks += 1
            if self.fallbacks == 1 or self.fallbacks % 1000 == 0:
                log.warning("shared rate limit unavailable, limiting per process: %s", exc)
            return self.fallback.take(key)
        granted = int(granted)
        if granted == 0:
            self._held.pop(key, None)
            return float(wait)
        if len(self._held) > MAX_BUCKETS:
            self._held.clear()
        self._held[key] = (granted - 1, self.clock() + LEASE_S)
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


def rate_limiter_for(url: str | None, rate: float, burst: int, lease: int = 10) -> RateLimiter:
    """The per-key limiter the settings ask for: shared through Redis at `url`, else local.
    Nothing connects here (the Redis client connects on first use)."""
    if url is None:
        return LocalRateLimiter(rate, burst)
    import redis.asyncio  # only deployments that share a limit need the client

    client = redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return RedisRateLimiter(client, rate, burst, lease=lease)
