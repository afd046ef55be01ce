"""The console's operators and their sessions (every statement about them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from kaipiao.store.tables import console_sessions, operators


@dataclass(frozen=True, slots=True)
class StoredOperator:
    id: str
    name: str
    role: str
    password_hash: str | None
    token_hash: str | None
    token_expires_at: datetime | None
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[tuple[object, ...]]) -> StoredOperator:
        return cls(**row._mapping)


def insert_operator(conn: Connection, values: dict[str, object]) -> None:
    conn.execute(insert(operators).values(**values))


def by_name(conn: Connection, name: str) -> StoredOperator | None:
    row = conn.execute(select(operators).where(operators.c.name == name)).first()
    return StoredOperator.from_row(row) if row else None


def by_id(conn: Connection, operator_id: str) -> StoredOperator | None:
    row = conn.execute(select(operators).where(operators.c.id == operator_id)).first()
    return StoredOperator.from_row(row) if row else None


def list_operators(conn: Connection) -> list[StoredOperator]:
    rows = conn.execute(select(operators).order_by(operators.c.name))
    return [StoredOperator.from_row(row) for row in rows]


def set_fields(conn: Connection, operator_id: str, **fields: object) -> bool:
    result = conn.execute(update(operators).where(operators.c.id == operator_id).values(**fields))
    return result.rowcount == 1


def consume_token(conn: Connection, operator_id: str, token_hash: str) -> bool:
    """Clear the one-time token if it is still this one (compare-and-set: used once)."""
    result = conn.execute(
        update(operators)
        .where(operators.c.id == operator_id, operators.c.token_hash == token_hash)
        .values(token_hash=None, token_expires_at=None)
    )
    return result.rowcount == 1


def insert_session(
    conn: Connection, *, id_hash: str, operator_id: str, csrf: str, now: datetime,
    expires_at: datetime,
) -> None:  # fmt: skip
    conn.execute(insert(console_sessions).values(
        id_hash=id_hash, operator_id=operator_id, csrf=csrf, created_at=now,
        expires_at=expires_at,
    ))  # fmt: skip


def live_session(
    conn: Connection, id_hash: str, now: datetime
) -> tuple[str, StoredOperator] | None:
    """The session's CSRF token and its operator, if the session is live and the operator is
    not disabled."""
    row = conn.execute(
        select(console_sessions.c.csrf, operators)
        .join(operators, operators.c.id == console_sessions.c.operator_id)
        .where(console_sessions.c.id_hash == id_hash, console_sessions.c.expires_at > now,
               operators.c.disabled_at.is_(None))
    ).first()  # fmt: skip
    if row is None:
        return None
    fields = dict(row._mapping)
    csrf = str(fields.pop("csrf"))
    return csrf, StoredOperator(**fields)


def delete_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))


def end_sessions(conn: Connection, operator_id: str) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.operator_id == operator_id))


def purge_sessions(conn: Connection, now: datetime) -> int:
    return int(
        conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now)).rowcount
    )
