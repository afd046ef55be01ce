"""Bearer-key authentication and the per-request guards that depend on who is calling.

A key that is not in the cache is looked up in the store. Failed lookups are limited per source
address (`Settings.auth_failure_burst`, `auth_failure_rate_per_s`): past the limit, a request
that would need a lookup is answered 429 `auth_rate_limited` without one, so guessing keys
costs the store nothing; a key already in the cache still works from that address. Each process
caches a key it has seen for at most CACHE_SECONDS, never past the key's expiry: a revoked key
stops working on every replica within that time (docs/security.md).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from kaipiao.api.guards import network_allowed
from kaipiao.api.problems import Problem
from kaipiao.domain.sellers import Seller
from kaipiao.observability import logs
from kaipiao.services.keys import hash_key
from kaipiao.services.sellers import principal_for
from kaipiao.store.sellers import Principal

CACHE_SECONDS = 30.0
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kaipiao"'}


class KeyCache:
    """Recently seen keys → principal, so intake does not read the keys table on every call.
    A revoked key stops working within CACHE_SECONDS; an expiring key at its expiry."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str, now: datetime) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        principal = entry[1]
        if principal.expires_at is not None and principal.expires_at <= now:
            del self._entries[key_hash]
            return None
        return principal

    def put(self, key_hash: str, principal: Principal) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + CACHE_SECONDS, principal)

    def clear(self) -> None:
        self._entries.clear()

    def forget(self, *, seller_id: str | None = None, admin: bool = False) -> None:
        """Drop a seller's cached keys (or the operator keys) after a rotation or revocation,
        so this process applies it at once (other replicas within CACHE_SECONDS)."""
        for key_hash, (_, who) in list(self._entries.items()):
            if (admin and who.is_admin) or (who.seller is not None and who.seller.id == seller_id):
                self._entries.pop(key_hash, None)


async def authenticate(state: Any, authorization: str, client: str | None = None) -> Principal:
    """The principal behind an `Authorization: Bearer` header value; Problem 401 if none, 429
    if `client` has failed too often to be granted another lookup."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem("unauthorized", "send Authorization: Bearer <api key>", headers=CHALLENGE)
    key_hash = hash_key(token.strip())
    now = state.clock()
    found: Principal | None = state.key_cache.get(key_hash, now)
    if found is not None:
        return found
    failures = state.auth_failures
    source = client or "unknown"
    if not failures.has_tokens(source):
        state.metrics.auth_failures.labels("limited").inc()
        raise Problem(
            "auth_rate_limited", "too many failed authentications from this address",
            headers={"Retry-After": str(max(1, round(1 / failures.rate + 0.5)))},
        )  # fmt: skip
    found = await principal_for(state.database, key_hash, now)
    if found is None:
        failures.take(source)
        state.metrics.auth_failures.labels("refused").inc()
        raise Problem("unauthorized", "unknown, expired or revoked API key", headers=CHALLENGE)
    state.key_cache.put(key_hash, found)
    return found


async def admit_seller(state: Any, who: Principal, client: str | None) -> Seller:
    """The seller a principal acts for, if it may call from `client` now: Problem 403 for a
    key without a seller or a caller outside the seller's networks, 429 over the rate limit."""
    if who.seller is None:
        raise Problem("forbidden", "this key belongs to no seller", status=403)
    if not network_allowed(client, who.seller.allowed_networks):
        raise Problem("network_not_allowed", f"calls from {client} are not allowed for this seller")
    logs.bind(seller_id=who.seller.id)
    wait = await state.rate_limiter.acquire(who.seller.id)
    if wait is not None:
        raise Problem(
            "rate_limited", "too many requests for this seller",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )  # fmt: skip
    return who.seller


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


async def principal(request: Request) -> Principal:
    return await authenticate(
        request.app.state, request.headers.get("authorization", ""), _client(request)
    )


async def seller(request: Request, who: Annotated[Principal, Depends(principal)]) -> Seller:
    return await admit_seller(request.app.state, who, _client(request))


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise Problem("forbidden", "an operator key is needed", status=403)
    return who


SellerDep = Annotated[Seller, Depends(seller)]
AdminDep = Annotated[Principal, Depends(admin)]
