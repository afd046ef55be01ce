"""Bearer-key authentication and the per-request guards that depend on who is calling."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, Request

from kaipiao.api.guards import network_allowed
from kaipiao.api.problems import Problem
from kaipiao.domain.sellers import Seller
from kaipiao.observability import logs
from kaipiao.services.sellers import hash_key, principal_for
from kaipiao.store.sellers import Principal

CACHE_SECONDS = 30.0


class KeyCache:
    """Recently seen keys → principal, so intake does not read the keys table on every call.
    A revoked key stops working within CACHE_SECONDS."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key_hash: str, principal: Principal) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + CACHE_SECONDS, principal)


async def authenticate(state: Any, authorization: str) -> Principal:
    """The principal behind an `Authorization: Bearer` header value; Problem 401 if none."""
    scheme, _, token = authorization.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="kaipiao"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem("unauthorized", "send Authorization: Bearer <api key>", headers=challenge)
    key_hash = hash_key(token.strip())
    found: Principal | None = state.key_cache.get(key_hash)
    if found is None:
        found = await principal_for(state.database, key_hash)
        if found is None:
            raise Problem("unauthorized", "unknown or revoked API key", headers=challenge)
        state.key_cache.put(key_hash, found)
    return found


def admit_seller(state: Any, who: Principal, client: str | None) -> Seller:
    """The seller a principal acts for, if it may call from `client` now: Problem 403 for a
    key without a seller or a caller outside the seller's networks, 429 over the rate limit."""
    if who.seller is None:
        raise Problem("forbidden", "this key belongs to no seller", status=403)
    if not network_allowed(client, who.seller.allowed_networks):
        raise Problem("network_not_allowed", f"calls from {client} are not allowed for this seller")
    logs.bind(seller_id=who.seller.id)
    wait = state.rate_limiter.acquire(who.key_id)
    if wait is not None:
        raise Problem(
            "rate_limited", "too many requests for this key",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )  # fmt: skip
    return who.seller


async def principal(request: Request) -> Principal:
    return await authenticate(request.app.state, request.headers.get("authorization", ""))


async def seller(request: Request, who: Annotated[Principal, Depends(principal)]) -> Seller:
    return admit_seller(request.app.state, who, request.client.host if request.client else None)


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise Problem("forbidden", "an operator key is needed", status=403)
    return who


SellerDep = Annotated[Seller, Depends(seller)]
AdminDep = Annotated[Principal, Depends(admin)]
