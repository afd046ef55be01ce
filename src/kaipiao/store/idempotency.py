"""Idempotency keys: the first request under a key claims it; retries replay its response.

A claim is committed on its own, before the work, so a concurrent retry sees it and gets
`request_in_progress` instead of doing the work twice. A claim whose holder died is taken over
once `locked_until` passes; a finished key is kept until `expires_at`.

A finished key holds the response document and whether the first request created the invoice
(stored as the HTTP status it was first answered with, 202 or 200, as it always has been).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from kaipiao.store.tables import idempotency_keys as keys

CLAIM_LOCK = timedelta(seconds=60)
_CREATED, _EXISTING = 202, 200  # `response_status`: created, or answered with an existing one


@dataclass(frozen=True, slots=True)
class Claimed:
    pass


@dataclass(frozen=True, slots=True)
class Replay:
    """The key's request was finished: `body` is the document it was answered with, `created`
    whether that request created the invoice."""

    created: bool
    body: str


@dataclass(frozen=True, slots=True)
class Reused:
    pass


@dataclass(frozen=True, slots=True)
class InProgress:
    pass


ClaimResult = Claimed | Replay | Reused | InProgress


def claim(
    conn: Connection,
    seller_id: str,
    key: str,
    request_hash: str,
    *,
    now: datetime,
    ttl: timedelta,
) -> ClaimResult:
    values = {
        "seller_id": seller_id,
        "key": key,
        "request_hash": request_hash,
        "state": "in_progress",
        "locked_until": now + CLAIM_LOCK,
        "created_at": now,
        "expires_at": now + ttl,
    }
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    inserted = conn.execute(dialect_insert(keys).values(**values).on_conflict_do_nothing())
    if inserted.rowcount == 1:
        return Claimed()
    row = (
        conn.execute(select(keys).where(keys.c.seller_id == seller_id, keys.c.key == key))
    ).first()
    if row is None:  # deleted in between (released): try once more next time
        return InProgress()
    expired = row.expires_at <= now
    stale = row.state == "in_progress" and row.locked_until is not None and row.locked_until <= now
    if expired or (stale and row.request_hash == request_hash):
        taken = conn.execute(
            update(keys)
            .where(
                keys.c.seller_id == seller_id,
                keys.c.key == key,
                keys.c.state == row.state,
                keys.c.expires_at == row.expires_at,
            )
            .values(**values, response_status=None, response_body=None)
        )
        return Claimed() if taken.rowcount == 1 else InProgress()
    if row.request_hash != request_hash:
        return Reused()
    if row.state == "done":
        return Replay(created=row.response_status == _CREATED, body=row.response_body)
    return InProgress()


def complete(conn: Connection, seller_id: str, key: str, *, created: bool, body: str) -> None:
    """Finish a claimed key with the answer its request got, for its replays."""
    status = _CREATED if created else _EXISTING
    conn.execute(
        update(keys)
        .where(keys.c.seller_id == seller_id, keys.c.key == key)
        .values(state="done", locked_until=None, response_status=status, response_body=body)
    )


def release(conn: Connection, seller_id: str, key: str) -> None:
    """Give a claim back (the request failed without effect), so the key can be used again."""
    conn.execute(
        delete(keys).where(
            keys.c.seller_id == seller_id, keys.c.key == key, keys.c.state == "in_progress"
        )
    )


def purge_expired(conn: Connection, now: datetime) -> int:
    result = conn.execute(delete(keys).where(keys.c.expires_at <= now))
    return int(result.rowcount)
