"""Reading the ledger for verification and proofs, and storing checkpoints.

Verification reads every event, so it bypasses SQLAlchemy's per-row machinery: rows come straight
from the driver in large chunks (sqlite3 in a thread; asyncpg's server-side cursor).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from kaipiao.ledger.signing import Checkpoint
from kaipiao.store.database import Database
from kaipiao.store.tables import ledger_checkpoints, ledger_head

CHUNK = 20_000
CHAIN_QUERY = (
    "SELECT seq, invoice_id, seller_id, type, created_at, payload, prev_hash, hash "
    "FROM ledger_events WHERE seq IS NOT NULL ORDER BY seq"
)


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
