"""Ledger events: one per state change, chained, written in the transaction that makes the change.

`append_event(s)` collects a transaction's events; `seal` (run by `Database` just before every
commit) locks the chain head, gives the events the next sequence numbers, links each to the
previous one's hash (SHA3-256, see `kaipiao.ledger.chain`), inserts them in one statement and moves
the head. The head is locked only from the seal to the commit, so concurrent writers queue for a
moment, never fork the chain, and never leave a gap. A unit of work rolled back to its savepoint
takes its events with it (`mark`/`forget`).

The payload is canonical JSON (sorted keys, no spaces, UTF-8), so its bytes, and its hash, are the
same whoever writes or reads it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from kaipiao.ledger.chain import event_hash, time_text
from kaipiao.store import pgraw
from kaipiao.store.tables import ledger_events

_PENDING = "kaipiao.pending_events"
_ACTOR = "kaipiao.actor"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in a ledger payload")


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def _pending(conn: Connection) -> list[dict[str, Any]]:
    pending: list[dict[str, Any]] | None = conn.info.get(_PENDING)
    if pending is None:
        pending = conn.info[_PENDING] = []
    return pending


def append_event(
    conn: Connection,
    *,
    invoice_id: str | None,
    seller_id: str | None,
    type: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    """Append one event; call it inside the transaction that makes the change it records. Under
    `acting_as`, the payload carries who asked for the change (`by`)."""
    actor: dict[str, str] | None = conn.info.get(_ACTOR)
    if actor is not None:
        payload = {**payload, **actor}
    _pending(conn).append(
        {
            "invoice_id": invoice_id,
            "seller_id": seller_id,
            "type": type,
            "payload": canonical_json(payload),
            "created_at": now,
        }
    )


@contextlib.contextmanager
def acting_as(conn: Connection, actor: str, note: str = "") -> Iterator[None]:
    """Every event appended on `conn` inside this block records `actor` as `by` (and the
    operator's `note`, if any) in its payload: a console operator's action goes through the same
    use case as the CLI's, and the ledger says who asked and why."""
    conn.info[_ACTOR] = {"by": actor, **({"note": note} if note else {})}
    try:
        yield
    finally:
        conn.info.pop(_ACTOR, None)


def append_action(conn: Connection, *, by: str, type: str, seller_id: str | None,
                  payload: dict[str, Any], now: datetime) -> None:  # fmt: skip
    """An operator's action that is no invoice's (a seller added, a key rotated, an operator
    disabled) as a ledger event naming them; call it inside the action's own transaction, so
    the action and its record commit together or not at all."""
    with acting_as(conn, by):
        append_event(conn, invoice_id=None, seller_id=seller_id, type=type, payload=payload,
                     now=now)  # fmt: skip


def actor_events(conn: Connection, *, actor: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest events some operator asked for (`acting_as`), optionally one operator's."""
    needle = f'"by":"{actor}"' if actor else '"by":"'
    rows = conn.execute(
        select(ledger_events)
        .where(ledger_events.c.payload.contains(needle, autoescape=True))
        .order_by(ledger_events.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]


def append_events(conn: Connection, events: list[dict[str, Any]], *, now: datetime) -> None:
    """Append several events (`invoice_id`, `seller_id`, `type`, `payload`, and optionally their
    own `created_at`, else `now`)."""
    _pending(conn).extend(
        {
            "invoice_id": e["invoice_id"],
            "seller_id": e["seller_id"],
            "type": e["type"],
            "payload": canonical_json(e["payload"]),
            "created_at": e.get("created_at", now),
        }
        for e in events
    )


def mark(conn: Connection) -> int:
    """Where the transaction's events stand now (for `forget` after a savepoint rollback)."""
    return len(_pending(conn))


def forget(conn: Connection, mark: int = 0) -> None:
    """Drop the events appended since `mark` (all of them by default): their changes were
    rolled back."""
    del _pending(conn)[mark:]


def _chain(
    pending: list[dict[str, Any]], seq: int, prev: str
) -> Iterator[tuple[dict[str, Any], int, str, str]]:
    """Each pending event with its sequence number, previous hash and hash, from the head
    (`seq`, `prev`) on."""
    for event in pending:
        seq += 1
        digest = event_hash(
            seq, event["invoice_id"], event["seller_id"], event["type"],
            time_text(event["created_at"]), event["payload"], prev,
        )  # fmt: skip
        yield event, seq, prev, digest
        prev = digest


def seal(conn: Connection) -> int:
    """Chain and insert the transaction's events; call it last before COMMIT. Returns the new
    head's sequence number (or 0 if there was nothing to seal)."""
    pending = _pending(conn)
    if not pending:
        return 0
    seq = _seal_sqlite(conn, pending) if conn.dialect.name == "sqlite" else _seal_pg(conn, pending)
    pending.clear()
    return seq


_PG_COLUMNS = ("invoice_id", "seller_id", "type", "payload", "created_at", "seq", "prev_hash",
               "hash")  # fmt: skip
# The events and the head's move in one statement (one round trip).
_PG_INSERT_AND_MOVE = (
    f"WITH added AS ({pgraw.json_insert(ledger_events, _PG_COLUMNS)}) "  # noqa: S608 (constants)
    "UPDATE ledger_head SET seq = $2, hash = $3 WHERE id = 1"
)


def _seal_pg(conn: Connection, pending: list[dict[str, Any]]) -> int:
    """The seal on PostgreSQL, straight through asyncpg (SQLAlchemy's executemany machinery was
    most of a batch's seal): the head locked until COMMIT, the events in one statement."""
    head_seq, head_hash = pgraw.fetch(
        conn, "SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE"
    )[0]
    rows = [
        {**event, "seq": seq, "prev_hash": prev, "hash": digest}
        for event, seq, prev, digest in _chain(pending, head_seq, head_hash)
    ]
    seq, digest = rows[-1]["seq"], rows[-1]["hash"]
    pgraw.execute(conn, _PG_INSERT_AND_MOVE, pgraw.rows_json(rows), seq, digest)
    return int(seq)


_SQLITE_INSERT = (
    "INSERT INTO ledger_events (invoice_id, seller_id, type, payload, created_at, seq, "
    "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sqlite_time(value: datetime) -> str:
    """A time as SQLAlchemy stores it on SQLite: naive UTC with microseconds."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _seal_sqlite(conn: Connection, pending: list[dict[str, Any]]) -> int:
    """The same seal through the driver's cursor: SQLite's single writer holds the lock already,
    and SQLAlchemy's per-statement work was most of a worker's commit cost (measured: 0.7 ms a
    seal)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    head_seq, head_hash = cursor.execute(
        "SELECT seq, hash FROM ledger_head WHERE id = 1"
    ).fetchone()
    rows = [
        (event["invoice_id"], event["seller_id"], event["type"], event["payload"],
         _sqlite_time(event["created_at"]), seq, prev, digest)
        for event, seq, prev, digest in _chain(pending, head_seq, head_hash)
    ]  # fmt: skip
    cursor.executemany(_SQLITE_INSERT, rows)
    seq, digest = rows[-1][5], rows[-1][7]
    cursor.execute("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
    cursor.close()
    return int(seq)


def events_for(conn: Connection, invoice_id: str) -> list[dict[str, Any]]:
    """An invoice's sealed events, in chain order."""
    rows = conn.execute(
        select(ledger_events)
        .where(ledger_events.c.invoice_id == invoice_id)
        .order_by(ledger_events.c.seq)
    )
    return [dict(row._mapping) for row in rows]
