"""Statements sent straight to asyncpg from inside a unit of work on PostgreSQL.

Units of work are plain functions on a SQLAlchemy `Connection` (run in a greenlet on
PostgreSQL). The few statements on intake's hot path (the batched invoice insert and the ledger
seal) skip SQLAlchemy's compile-and-bind machinery, which cost more than the database's own
work for them (measured: bench/README.md, intake), and go to the asyncpg connection under the
same transaction. Many rows go in one statement as one JSON array, through
`json_populate_recordset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.util import await_only


def _driver(conn: Connection) -> Any:
    raw = conn.connection.driver_connection
    if raw is not None and not raw.is_in_transaction() and conn.in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with its first statement: when this is the
        # unit of work's first, let SQLAlchemy send one so that the transaction is open.
        conn.exec_driver_sql("SELECT 1")
    if raw is None or not raw.is_in_transaction():
        # A statement outside the unit of work's transaction would commit on its own.
        raise RuntimeError("raw statements run only inside a unit of work's open transaction")
    return raw


def fetch(conn: Connection, sql: str, *args: Any) -> list[Any]:
    """Rows of `sql` ($1, $2, … placeholders) on the unit of work's transaction."""
    return list(await_only(_driver(conn).fetch(sql, *args)))


def execute(conn: Connection, sql: str, *args: Any) -> None:
    await_only(_driver(conn).execute(sql, *args))


def json_insert(table: Table, columns: Sequence[str], suffix: str = "") -> str:
    """`INSERT INTO table (columns) SELECT columns FROM json_populate_recordset(…, $1)`: many
    rows in one JSON array, each value turned into its column's type by PostgreSQL. One text
    parameter instead of one array per column (measured: asyncpg checks every element of an
    array parameter against abstract base classes, 60 checks a row for an invoice)."""
    for name in columns:
        table.c[name]
    names = ", ".join(columns)
    source = f"json_populate_recordset(NULL::{table.name}, $1::json)"
    sql = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {source} {suffix}"  # noqa: S608 - names from our Table objects; values bound
    return sql.strip()


def rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as `json_insert` takes them: Decimals as strings, times in ISO 8601 with their
    offset, None as null (pydantic-core's encoder: about 3 µs a row). A naive time is refused,
    as `UtcDateTime` refuses it on SQLAlchemy's path: PostgreSQL would read it in the session's
    time zone."""
    for row in rows:
        for value in row.values():
            if isinstance(value, datetime) and value.tzinfo is None:
                raise ValueError("naive datetime given; kaipiao stores aware UTC times only")
    return to_json(rows).decode()
