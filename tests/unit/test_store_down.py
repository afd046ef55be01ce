"""Which database errors mean "the store is down, retry" (503) and which are bugs (500)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, PendingRollbackError

from kaipiao.store.database import is_store_down


class CannotConnectNowError(Exception):
    """Stands in for asyncpg's class of that name (matched by name, as the driver's own)."""


def wrapped(cause: Exception, kind: type[DBAPIError] = DBAPIError) -> DBAPIError:
    try:
        try:
            raise cause
        except Exception as exc:
            raise kind("SELECT 1", {}, exc) from exc
    except DBAPIError as outer:
        return outer


def test_a_restarting_server_is_down() -> None:
    assert is_store_down(wrapped(CannotConnectNowError("the database system is shutting down")))
    assert is_store_down(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert is_store_down(PendingRollbackError("Can't reconnect until invalid transaction"))
    assert is_store_down(ConnectionRefusedError(111, "refused"))


def test_a_refused_statement_or_a_bug_is_not() -> None:
    assert not is_store_down(wrapped(ValueError("bad value"), IntegrityError))
    assert not is_store_down(KeyError("x"))
