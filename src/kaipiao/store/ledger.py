"""Reading the ledger for verification and proofs, and storing checkpoints.

Verification reads every event, so it bypasses SQLAlchemy's per-row machinery. With the compiled
walker (`kaipiao.ledger._walk`) no Python object is made per event: it reads the SQLite file
itself, or PostgreSQL's binary COPY; without it, rows come straight from the driver in large
chunks (sqlite3 in a thread; asyncpg's server-side cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from kaipiao.ledger.signing import Checkpoint
from kaipiao.store.database import Database
from kaipiao.store.tables import ledger_checkpoints, ledger_head

CHUNK = 20_000
PIPE_BYTES = 1 << 20
_CHAIN_SELECT = (
    "SELECT seq, invoice_id, seller_id, type, created_at, payload, prev_hash, hash "
    "FROM ledger_events WHERE seq IS NOT NULL"
)
CHAIN_QUERY = _CHAIN_SELECT + " ORDER BY seq"
Progress = Callable[[int], None]


class ChainWalker(Protocol):
    """What `walk` drives: kaipiao.ledger._walk.Walker."""

    @property
    def size(self) -> int: ...
    @property
    def bad(self) -> tuple[Any, ...] | None: ...
    def feed_copy(self, data: bytes) -> int: ...
    def end_copy(self) -> None: ...
    def open_sqlite(self, path: str, sql: str) -> None: ...
    def step_sqlite(self, most: int) -> int: ...
    def close(self) -> None: ...


def chain_query(after: int = 0, upto: int | None = None) -> str:
    """CHAIN_QUERY for the events with `after < seq <= upto` (no upper bound if None)."""
    bounds = f" AND seq > {int(after)}" + ("" if upto is None else f" AND seq <= {int(upto)}")
    return f"{_CHAIN_SELECT}{bounds} ORDER BY seq"


def hashes_at(conn: Connection, seqs: list[int]) -> dict[int, str]:
    """The stored hashes of the events with these sequence numbers (those that exist)."""
    if not seqs:
        return {}
    listed = ",".join(str(int(s)) for s in seqs)
    rows = conn.exec_driver_sql(
        f"SELECT seq, hash FROM ledger_events WHERE seq IN ({listed})"  # noqa: S608 (integers)
    ).all()
    return {int(seq): str(digest) for seq, digest in rows if digest is not None}


async def walk(
    db: Database,
    walker: ChainWalker,
    progress: Progress,
    *,
    after: int = 0,
    upto: int | None = None,
) -> None:
    """Feed the chain's events with `after < seq <= upto` (all by default), in order and on one
    snapshot, to `walker`; it stops at the first bad event. `progress` is called with the events
    checked so far, every `CHUNK` events or so. Each call reads on its own connection, so
    segments of one chain can be walked at once, one per core (the walker computes without
    Python's global lock)."""
    if db.dialect == "sqlite":
        path = db.url.split(":///", 1)[1]
        sql = chain_query(after, upto)
        await asyncio.to_thread(walker.open_sqlite, path, sql)
        try:
            while await asyncio.to_thread(walker.step_sqlite, CHUNK) == CHUNK:
                progress(walker.size)
        finally:
            walker.close()
        progress(walker.size)
        return
    # Pipelined: the walker checks one megabyte (in a thread, without the global lock) while the
    # driver receives the next (measured: 330,000 events/s fed chunk by chunk, 440,000 so).
    received: list[bytes] = []
    size = 0
    checking: asyncio.Future[int] | None = None

    async def check(data: bytes) -> None:
        nonlocal checking
        if checking is not None:
            await checking
            progress(walker.size)
        checking = asyncio.ensure_future(asyncio.to_thread(walker.feed_copy, data))

    async def feed(data: bytes) -> None:
        nonlocal size
        received.append(data)
        size += len(data)
        if size >= PIPE_BYTES:
            await check(b"".join(received))
            received.clear()
            size = 0

    async with db.raw_postgres() as pg:
        # Binary COPY: PostgreSQL neither formats nor escapes anything (measured: text COPY with
        # the time formatted by to_char held verification to 290,000 events/s).
        try:
            await pg.copy_from_query(chain_query(after, upto), output=feed, format="binary")
        finally:
            if checking is not None:
                await checking
    walker.feed_copy(b"".join(received))
    walker.end_copy()
    progress(walker.size)


async def stream(
    db: Database, sql: str, params: tuple[Any, ...] = ()
) -> AsyncGenerator[list[Any], None]:
    """Rows of `sql` (`?` placeholders) in chunks, read on one consistent snapshot."""
    if db.dialect == "sqlite":
        path = db.url.split(":///", 1)[1]
        conn = await asyncio.to_thread(sqlite3.connect, path, check_same_thread=False)
        try:
            await asyncio.to_thread(conn.execute, "BEGIN")
            cursor = await asyncio.to_thread(conn.execute, sql, params)
            while rows := await asyncio.to_thread(cursor.fetchmany, CHUNK):
                yield rows
        finally:
            conn.close()
        return
    numbered = sql
    for i in range(len(params)):
        numbered = numbered.replace("?", f"${i + 1}", 1)
    async with db.raw_postgres() as pg, pg.transaction(isolation="repeatable_read", readonly=True):
        cursor = await pg.cursor(numbered, *params)
        while rows := await cursor.fetch(CHUNK):
            yield rows


_LEAVES = "SELECT hash FROM ledger_events WHERE seq > ? AND seq <= ? ORDER BY seq"


async def leaf_hashes(db: Database, after: int, upto: int) -> AsyncGenerator[list[bytes], None]:
    """The hashes of the events with `after < seq <= upto` (the Merkle tree's leaves), in
    order, in chunks, read on one snapshot."""
    async with contextlib.aclosing(stream(db, _LEAVES, (after, upto))) as chunks:
        async for rows in chunks:
            yield [bytes.fromhex(row[0]) for row in rows]


def unsealed(conn: Connection) -> int:
    """Events without a sequence number: inserted outside the chain (never by kaipiao)."""
    return int(
        conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_events WHERE seq IS NULL").scalar_one()
    )


def head(conn: Connection) -> tuple[int, str]:
    seq, digest = conn.execute(select(ledger_head.c.seq, ledger_head.c.hash)).one()
    return int(seq), str(digest)


def checkpoints(conn: Connection) -> list[Checkpoint]:
    rows = conn.execute(select(ledger_checkpoints).order_by(ledger_checkpoints.c.size)).all()
    return [Checkpoint(r.size, r.root, r.time, r.key_id, r.signature) for r in rows]


def latest_checkpoint(conn: Connection) -> Checkpoint | None:
    size = conn.execute(select(func.max(ledger_checkpoints.c.size))).scalar()
    if size is None:
        return None
    r = conn.execute(select(ledger_checkpoints).where(ledger_checkpoints.c.size == size)).one()
    return Checkpoint(r.size, r.root, r.time, r.key_id, r.signature)


def checkpoint_at(conn: Connection, size: int) -> Checkpoint | None:
    r = conn.execute(select(ledger_checkpoints).where(ledger_checkpoints.c.size == size)).first()
    return Checkpoint(r.size, r.root, r.time, r.key_id, r.signature) if r else None


def add_checkpoint(conn: Connection, checkpoint: Checkpoint, frontier: str | None = None) -> bool:
    """Store a checkpoint (and the Merkle frontier at its size); False if one of that size exists
    already (another process made it)."""
    if checkpoint_at(conn, checkpoint.size) is not None:
        return False
    conn.execute(ledger_checkpoints.insert().values(**checkpoint.to_json(), frontier=frontier))
    return True


def latest_frontier(conn: Connection) -> tuple[int, str] | None:
    """The newest checkpoint's size and stored frontier, if it has one."""
    row = conn.execute(
        select(ledger_checkpoints.c.size, ledger_checkpoints.c.frontier)
        .where(ledger_checkpoints.c.frontier.is_not(None))
        .order_by(ledger_checkpoints.c.size.desc())
        .limit(1)
    ).first()
    return (int(row.size), str(row.frontier)) if row else None
