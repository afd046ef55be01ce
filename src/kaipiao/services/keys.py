"""The life of credentials: API keys (a seller's, an operator's) and a seller's webhook secret.

- **Rotate** a key: a new key is made and returned once; the keys it replaces keep working for
  the overlap (default 24 h, `DEFAULT_OVERLAP`) so clients can be redeployed, then expire.
- **Revoke** a key: it stops working at once in the store. Each API process caches a key it has
  seen for at most `kaipiao.api.auth.CACHE_SECONDS` (30 s), so a revocation reaches every
  replica within that time (and at once on the replica that revoked it).
- **Rotate the webhook secret**: the new secret is returned once; during the overlap every
  delivery carries two signatures, one per secret, so a receiver can switch at its own pace.

Keys are stored as hashes only (`hash_key`); the webhook secret is stored as is, because signing
needs it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from kaipiao.services import ids
from kaipiao.services.errors import NotFound, ServiceError
from kaipiao.store import events
from kaipiao.store import sellers as repo
from kaipiao.store.database import Conn, Database

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    api_key: str  # shown once
    previous_expire_at: datetime | None  # when the keys it replaces stop working


@dataclass(frozen=True, slots=True)
class NewSecret:
    webhook_secret: str  # shown once
    previous_valid_until: datetime


def _overlap(overlap: timedelta) -> timedelta:
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ServiceError("overlap must be between 0 and 30 days", "invalid_overlap")
    return overlap


def _need_seller(conn: Conn, seller_id: str) -> None:
    if repo.get_seller(conn, seller_id) is None:
        raise NotFound(f"no seller {seller_id}", "seller_not_found")


def _insert_key(conn: Conn, seller_id: str | None, now: datetime) -> tuple[str, str]:
    api_key, key_id = ids.new_api_key(), ids.key_id()
    repo.insert_api_key(
        conn, key_id=key_id, seller_id=seller_id, key_hash=hash_key(api_key),
        prefix=api_key[:8], is_admin=seller_id is None, now=now,
    )  # fmt: skip
    return key_id, api_key


async def rotate_key(
    db: Database, seller_id: str | None, *, now: datetime, overlap: timedelta = DEFAULT_OVERLAP,
    by: str | None = None,
) -> NewKey:  # fmt: skip
    """A new key for the seller (None: a new operator key, the other operator keys ending after
    `overlap`); the seller's other live keys end after `overlap` (0: at once). With `by` (an
    operator), a `seller_key_rotated` ledger event names them."""
    until = now + _overlap(overlap)

    def work(conn: Conn) -> NewKey:
        if seller_id is not None:
            _need_seller(conn, seller_id)
        ended = repo.expire_keys(conn, seller_id=seller_id, until=until, now=now)
        key_id, api_key = _insert_key(conn, seller_id, now)
        if by is not None:
            events.append_action(conn, by=by, type="seller_key_rotated", seller_id=seller_id,
                                 payload={"key_id": key_id}, now=now)  # fmt: skip
        return NewKey(key_id, api_key, until if ended else None)

    return await db.write(work)


async def create_operator_key(db: Database, *, now: datetime) -> NewKey:
    """One more operator key; existing ones are untouched."""
    key_id, api_key = await db.write(lambda conn: _insert_key(conn, None, now))
    return NewKey(key_id, api_key, None)


async def revoke(
    db: Database, *, now: datetime, seller_id: str | None = None, key_id: str | None = None,
    by: str | None = None,
) -> list[str]:  # fmt: skip
    """Revoke one key (`key_id`, within `seller_id` if given) or all of a seller's keys; the
    revoked ids. NotFound if nothing live matched. With `by` (an operator), a
    `seller_keys_revoked` ledger event names them."""
    if seller_id is None and key_id is None:
        raise ServiceError("name a seller or a key", "invalid_request")

    def work(conn: Conn) -> list[str]:
        if seller_id is not None:
            _need_seller(conn, seller_id)
        done = repo.revoke_keys(conn, now=now, seller_id=seller_id, key_id=key_id)
        if not done:
            raise NotFound("no live key matches", "key_not_found")
        if by is not None:
            events.append_action(conn, by=by, type="seller_keys_revoked", seller_id=seller_id,
                                 payload={"key_ids": done}, now=now)  # fmt: skip
        return done

    return await db.write(work)


async def list_keys(db: Database, seller_id: str | None) -> list[repo.KeyInfo]:
    """A seller's keys, or (None) the operator keys."""

    def read(conn: Conn) -> list[repo.KeyInfo]:
        if seller_id is not None:
            _need_seller(conn, seller_id)
        return repo.list_keys(conn, seller_id=seller_id, admin=seller_id is None)

    return await db.read(read)


async def rotate_webhook_secret(
    db: Database, seller_id: str, *, now: datetime, overlap: timedelta = DEFAULT_OVERLAP
) -> NewSecret:
    """A new webhook secret for the seller, returned once; the old one signs too until
    `now + overlap`."""
    secret, until = new_webhook_secret(), now + _overlap(overlap)

    def work(conn: Conn) -> None:
        if not repo.set_webhook_secret(conn, seller_id, secret, until):
            raise NotFound(f"no seller {seller_id}", "seller_not_found")

    await db.write(work)
    return NewSecret(secret, until)
