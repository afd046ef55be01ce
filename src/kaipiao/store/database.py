"""The database handle. A unit of work is a plain function of a SQLAlchemy `Connection`; the
handle runs it in a transaction and hands back its result.

PostgreSQL: the async engine (asyncpg), the unit of work run through `run_sync`, so each
statement is one await on the driver.

SQLite: one writer thread and a few reader threads, each with its own sqlite3 connection. The
writer commits in groups: it takes every unit of work queued while the last commit was being
made, runs each inside its own SAVEPOINT (one failing unit rolls back alone), commits once, and
only then answers their callers. So an acknowledged write is on disk (WAL, synchronous=FULL), and
one fsync serves many requests under load. Why not aiosqlite: its thread round trip per cursor
call added up to ~2.5 ms per transaction (16 hops) and capped intake at ~100 requests/s.
Write transactions begin IMMEDIATE, so writers in other processes wait on the busy timeout rather
than failing on a stale snapshot.

Batched units (`write_batched`): many requests of one kind (a new invoice, say) run as one call
over all of them (one multi-row INSERT instead of one per request) inside one transaction; on
PostgreSQL a writer task gathers them while the previous batch commits, exactly as the SQLite
writer does, so a burst of requests costs a few round trips and one commit. If a batch fails,
each of its items is run again alone, so one bad item fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from kaipiao.store import events
from kaipiao.store.commit import Job, PgBatcher, SqliteWriter, TransactionStats

__all__ = ["STORE_DOWN", "BatchWork", "Conn", "Database", "TransactionStats", "Work",
           "is_store_down"]  # fmt: skip

Conn: TypeAlias = Connection
"""The connection a unit of work runs on: services and the engine annotate with this name and
hand it to repositories, so nothing above the store imports SQLAlchemy."""

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
Work = Callable[[Connection], T]
BatchWork = Callable[[Connection, list[ItemT]], list[ResultT]]
"""Runs a batch of items of one kind and returns one result per item, in order."""
READERS = 4


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # kaipiao emits BEGIN itself
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=30000",
        # Savepoints keep a statement journal; in a file it cost a tenth of the writer's time.
        "PRAGMA temp_store=MEMORY",
        # 16 MiB of page cache per connection (the default is 2 MiB): bounded, so a process's
        # memory stays flat however large the store grows (bench/backlog_memory.py).
        "PRAGMA cache_size=-16384",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sealed(conn: Connection, work: Work[T]) -> T:
    """`work`, then its ledger events sealed into the chain, ready to commit."""
    events.forget(conn)
    try:
        result = work(conn)
        events.seal(conn)
    except BaseException:
        events.forget(conn)
        raise
    return result


class Database:
    """One database, SQLite or PostgreSQL. Nothing connects until the first unit of work."""

    def __init__(
        self, url: str, *, pool_size: int = 20, echo: bool = False, linger_s: float = 0.0
    ) -> None:
        """`linger_s`: how long the SQLite writer waits for more work before committing a
        group (a worker process, whose results wait on 800 ms platform calls anyway, trades a
        few milliseconds for fewer commits and fsyncs)."""
        self.url = url
        self.linger_s = linger_s
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self._async: AsyncEngine | None = None
        self._sync: Engine | None = None
        self._writer: SqliteWriter | None = None
        self._batcher: PgBatcher | None = None
        self.stats = TransactionStats()
        self._readers: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if self.dialect == "sqlite":
            path = url.split(":///", 1)[1]
            self._sync = create_engine(
                f"sqlite:///{path}",
                echo=echo,
                poolclass=NullPool,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(self._sync, "connect", _sqlite_pragmas)
        else:
            # No pre-ping: it costs a round trip per checkout; a dropped connection fails its
            # statement instead, SQLAlchemy invalidates the pool, and callers see a retryable 503.
            self._async = create_async_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size
            )

    @property
    def engine(self) -> AsyncEngine | Engine:
        engine = self._async or self._sync
        assert engine is not None
        return engine

    # -- SQLite plumbing -----------------------------------------------------------------------
    def _sqlite_writer(self) -> SqliteWriter:
        with self._lock:
            if self._writer is None:
                assert self._sync is not None
                self._writer = SqliteWriter(self._sync, self.stats, self.linger_s)
            return self._writer

    def _sqlite_readers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._readers is None:
                self._readers = ThreadPoolExecutor(
                    READERS, thread_name_prefix="kaipiao-sqlite-read"
                )
                self._reader_conns = threading.local()
                self._opened: list[Connection] = []
            return self._readers

    def _read_in_thread(self, work: Work[T]) -> T:
        conns = self._reader_conns
        conn: Connection | None = getattr(conns, "conn", None)
        if conn is None or conn.closed:
            assert self._sync is not None
            conn = conns.conn = self._sync.connect()
            with self._lock:
                self._opened.append(conn)
        conn.exec_driver_sql("BEGIN")
        try:
            return work(conn)
        finally:
            conn.exec_driver_sql("ROLLBACK")

    # -- units of work -------------------------------------------------------------------------
    async def write(self, work: Work[T]) -> T:
        """Run `work` in a write transaction; its result once committed, or its exception
        (then nothing it did is kept)."""
        if self._async is not None:
            try:
                async with self._async.connect() as conn, conn.begin():
                    result = await conn.run_sync(_sealed, work)
            except BaseException:
                self.stats.rollbacks += 1
                raise
            self.stats.commits += 1
            return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._sqlite_writer().submit(Job(work, loop, future))
        return await future

    async def write_batched(self, work: BatchWork[ItemT, ResultT], item: ItemT) -> ResultT:
        """Run `item` with others queued for the same `work` (a module-level function, so that
        equal kinds are the same object), in one write transaction; its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        job = Job(None, loop, future, work, item)
        if self._async is not None:
            if self._batcher is None or self._batcher.loop is not loop or self._batcher.task.done():
                self._batcher = PgBatcher(self._async, self.stats)
            self._batcher.submit(job)
        else:
            self._sqlite_writer().submit(job)
        return await future

    async def read(self, work: Work[T]) -> T:
        """Run `work` on a consistent snapshot."""
        if self._async is not None:
            async with self._async.connect() as conn, conn.begin():
                return await conn.run_sync(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._sqlite_readers(), self._read_in_thread, work)

    async def exclusive(self, work: Work[T]) -> T:
        """Run `work` alone in its own transaction (migrations: DDL outside group commit)."""
        if self._async is not None:
            async with self._async.connect() as conn, conn.begin():
                return await conn.run_sync(_sealed, work)

        def alone() -> T:
            assert self._sync is not None
            with self._sync.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    result = _sealed(conn, work)
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
                return result

        return await asyncio.to_thread(alone)

    @contextlib.asynccontextmanager
    async def raw_postgres(self) -> AsyncIterator[Any]:
        """The asyncpg connection under a pooled connection (bulk reads that skip SQLAlchemy)."""
        assert self._async is not None, "PostgreSQL only"
        async with self._async.connect() as conn:
            raw = await conn.get_raw_connection()
            yield raw.driver_connection

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    async def dispose(self) -> None:
        if self._async is not None:
            batcher, self._batcher = self._batcher, None
            if batcher is not None and batcher.loop is asyncio.get_running_loop():
                await batcher.stop()
            await self._async.dispose()
            return
        with self._lock:
            writer, readers = self._writer, self._readers
            self._writer = self._readers = None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if readers is not None:
            readers.shutdown(wait=True)
            for conn in self._opened:
                conn.close()
            self._opened = []
        assert self._sync is not None
        self._sync.dispose()


# Errors of asyncpg (by class name, seen as the cause of SQLAlchemy's wrappers) that mean the
# server went away or is restarting, not that the statement was wrong. During a failover: no host
# of a multi-host URL is writable yet (TargetServerAttributeNotMatched), the server was shut down
# or crashed under the session (AdminShutdown, CrashShutdown), or a session still on a server that
# became read-only (ReadOnlySQLTransaction): all "try again shortly", none a bad statement.
_CONNECTION_LOST = frozenset({
    "CannotConnectNowError", "ConnectionDoesNotExistError", "ConnectionFailureError",
    "InternalClientError", "InterfaceError", "PostgresConnectionError", "TooManyConnectionsError",
    "TargetServerAttributeNotMatched", "AdminShutdownError", "CrashShutdownError",
    "ReadOnlySQLTransactionError",
})  # fmt: skip
_DOWN = (OperationalError, InterfaceError, PoolTimeout, PendingRollbackError, OSError)
STORE_DOWN: tuple[type[Exception], ...] = (*_DOWN, DBAPIError)
"""Exception classes that may mean the store is down (for handler registration);
`is_store_down` decides for each instance."""


def is_store_down(exc: BaseException) -> bool:
    """True when `exc` says the database is unreachable or restarting (retry later), False
    for anything else (a bug or a refused statement)."""
    if isinstance(exc, _DOWN):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in _CONNECTION_LOST:
            return True
        seen = seen.__cause__
    return False
