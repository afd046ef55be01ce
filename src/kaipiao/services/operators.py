"""The console's principals: operators with a role, signing in with a password or a one-time
token, and their sessions.

Roles nest: a **viewer** reads every page; an **operator** also acts on invoices (requeue,
cancel, reverse); an **admin** also manages sellers and operators (`can`).

Secrets are hashed with argon2id (argon2-cffi's defaults: 64 MiB, 3 passes), memory-hard so a
stolen table costs an attacker the memory of every guess; a one-time token is hashed the same way
and cleared by the first sign-in that uses it (compare-and-set). A session is a random cookie
value of which only the SHA-256 is stored, with its own CSRF token and an expiry.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from kaipiao.services.errors import Conflict, NotFound, ServiceError
from kaipiao.store import events
from kaipiao.store import operators as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.operators import StoredOperator

ROLES = ("viewer", "operator", "admin")
TOKEN_LIFETIME = timedelta(days=1)
_HASHER = PasswordHasher()
# Verifying against this when the name is unknown costs the same as a real check, so the time
# an attempt takes does not tell which operator names exist.
_DUMMY = _HASHER.hash(secrets.token_hex(16))


def can(role: str, needed: str) -> bool:
    """Whether `role` includes `needed` (viewer < operator < admin)."""
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class NewOperator:
    operator_id: str
    name: str
    role: str
    sign_in_token: str | None  # shown once; None when a password was set


@dataclass(frozen=True, slots=True)
class Session:
    cookie: str  # the cookie's value, given to the browser once
    csrf: str
    operator: StoredOperator
    expires_at: datetime


def _check_name(name: str) -> None:
    if not (1 <= len(name) <= 64) or not name.replace("-", "").replace("_", "").isalnum():
        raise ServiceError("an operator name is 1-64 letters, digits, - or _", "invalid_request")


async def add_operator(
    db: Database, *, name: str, role: str, now: datetime, password: str | None = None,
    by: str | None = None,
) -> NewOperator:  # fmt: skip
    """A new operator with a password, or (none given) a one-time sign-in token valid a day.
    With `by` (an operator), an `operator_added` ledger event names them."""
    _check_name(name)
    if role not in ROLES:
        raise ServiceError(f"role is one of {', '.join(ROLES)}", "invalid_request")
    if password is not None and len(password) < 12:
        raise ServiceError("a password has at least 12 characters", "invalid_request")
    token = None if password is not None else "kpo_" + secrets.token_urlsafe(24)
    operator_id = "op_" + secrets.token_hex(8)

    def work(conn: Conn) -> None:
        if repo.by_name(conn, name) is not None:
            raise Conflict(f"an operator named {name} exists", "operator_exists")
        repo.insert_operator(conn, {
            "id": operator_id, "name": name, "role": role, "created_at": now,
            "password_hash": _HASHER.hash(password) if password is not None else None,
            "token_hash": _HASHER.hash(token) if token is not None else None,
            "token_expires_at": now + TOKEN_LIFETIME if token is not None else None,
        })  # fmt: skip
        if by is not None:
            events.append_action(conn, by=by, type="operator_added", seller_id=None,
                                 payload={"name": name, "role": role}, now=now)  # fmt: skip

    await db.write(work)
    return NewOperator(operator_id, name, role, token)


async def list_operators(db: Database) -> list[StoredOperator]:
    return await db.read(repo.list_operators)


async def disable(db: Database, name: str, *, now: datetime, by: str | None = None) -> None:
    """Disable an operator and end their sessions at once. With `by` (an operator), an
    `operator_disabled` ledger event names them."""

    def work(conn: Conn) -> None:
        found = repo.by_name(conn, name)
        if found is None:
            raise NotFound(f"no operator {name}", "operator_not_found")
        repo.set_fields(conn, found.id, disabled_at=now)
        repo.end_sessions(conn, found.id)
        if by is not None:
            events.append_action(conn, by=by, type="operator_disabled", seller_id=None,
                                 payload={"name": name}, now=now)  # fmt: skip

    await db.write(work)


def _matches(stored: str | None, secret: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, secret) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _session_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


async def sign_in(
    db: Database, name: str, secret: str, *, now: datetime, lifetime: timedelta
) -> Session | None:
    """A new session if `secret` is the operator's password or their unused, unexpired
    one-time token; None otherwise (which of the two failed is not said)."""
    found = await db.read(lambda conn: repo.by_name(conn, name[:64]))
    if found is None or found.disabled_at is not None:
        _matches(None, secret)
        return None
    by_password = _matches(found.password_hash, secret)
    token_live = found.token_expires_at is not None and found.token_expires_at > now
    by_token = not by_password and token_live and _matches(found.token_hash, secret)
    if not (by_password or by_token):
        return None
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

    def work(conn: Conn) -> bool:
        if by_token and not repo.consume_token(conn, found.id, str(found.token_hash)):
            return False  # used by a concurrent sign-in
        repo.purge_sessions(conn, now)
        repo.insert_session(conn, id_hash=_session_hash(cookie), operator_id=found.id,
                            csrf=csrf, now=now, expires_at=now + lifetime)  # fmt: skip
        return True

    if not await db.write(work):
        return None
    return Session(cookie, csrf, found, now + lifetime)


async def session_for(db: Database, cookie: str, *, now: datetime) -> Session | None:
    """The live session this cookie names, or None (unknown, expired, operator disabled)."""
    if not cookie or len(cookie) > 100:
        return None
    found = await db.read(lambda conn: repo.live_session(conn, _session_hash(cookie), now))
    if found is None:
        return None
    csrf, operator = found
    return Session(cookie, csrf, operator, now)


async def sign_out(db: Database, cookie: str) -> None:
    await db.write(lambda conn: repo.delete_session(conn, _session_hash(cookie)))


async def set_password(db: Database, operator_id: str, password: str) -> None:
    if len(password) < 12:
        raise ServiceError("a password has at least 12 characters", "invalid_request")
    hashed = _HASHER.hash(password)
    await db.write(lambda conn: repo.set_fields(conn, operator_id, password_hash=hashed))


class SignInLimiter:
    """At most `per_minute` sign-in attempts per (name, address) in any minute, per process:
    an online guess costs an attacker a minute per few tries, on top of argon2's cost."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[tuple[str, str], deque[float]] = {}

    def allow(self, name: str, address: str, now_s: float) -> bool:
        if len(self._seen) > 10_000:
            self._seen.clear()
        times = self._seen.setdefault((name[:64], address), deque())
        while times and times[0] <= now_s - 60:
            times.popleft()
        if len(times) >= self.per_minute:
            return False
        times.append(now_s)
        return True
