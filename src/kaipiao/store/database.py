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
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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

Conn: TypeAlias = Connection
"""The connection a unit of work runs on: what services annotate, so they need not know
SQLAlchemy."""

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
Work = Callable[[Connection], T]
BatchWork = Callable[[Connection, list[ItemT]], list[ResultT]]
"""Runs a batch of items of one kind and returns one result per item, in order."""
MAX_BATCH = 256
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


@dataclass(slots=True)
class _Job:
    work: Callable[[Connection], Any] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    batch: Callable[[Connection, list[Any]], list[Any]] | None = None
    item: Any = None


def _runs(jobs: list[_Job]) -> list[list[_Job]]:
    """Consecutive jobs of one batch kind grouped together; every other job alone."""
    runs: list[list[_Job]] = []
    for job in jobs:
        if runs and job.batch is not None and runs[-1][0].batch is job.batch:
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs


def _results(conn: Connection, group: list[_Job]) -> list[Any]:
    """The results of a group of jobs: a plain unit alone, or one batch call for all."""
    if group[0].batch is None:
        work = group[0].work
        assert work is not None
        return [work(conn)]
    results = group[0].batch(conn, [job.item for job in group])
    if len(results) != len(group):
        raise RuntimeError("a batch returned the wrong number of results")
    return results


def _run_batch(
    conn: Connection, run: list[_Job], savepoint: Callable[[str], None]
) -> list[tuple[_Job, Any, BaseException | None]]:
    """One run of jobs inside savepoints: a failed batch is retried item by item, so only the
    item at fault fails."""
    attempts = [run]
    outcomes: list[tuple[_Job, Any, BaseException | None]] = []
    while attempts:
        group = attempts.pop(0)
        savepoint("SAVEPOINT unit")
        mark = events.mark(conn)
        try:
            results = _results(conn, group)
        except BaseException as exc:  # the group's own failure: undo it alone
            savepoint("ROLLBACK TO unit")
            savepoint("RELEASE unit")
            events.forget(conn, mark)
            if len(group) > 1:
                attempts = [[job] for job in group] + attempts
            else:
                outcomes.append((group[0], None, exc))
        else:
            savepoint("RELEASE unit")
            outcomes.extend((job, result, None) for job, result in zip(group, results, strict=True))
    return outcomes


def _deliver(job: _Job, result: Any, error: BaseException | None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)


def _settle(job: _Job, result: Any, error: BaseException | None) -> None:
    """`_deliver` from another thread."""
    job.loop.call_soon_threadsafe(_deliver, job, result, error)


@dataclass
class TransactionStats:
    """Units of work committed and rolled back (a unit undone alone inside a group commit
    counts as one rollback), for the `kaipiao_db_*_total` metrics."""

    commits: int = 0
    rollbacks: int = 0

    def count(self, outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
        failed = sum(1 for _, _, error in outcomes if error is not None)
        self.rollbacks += failed
        self.commits += len(outcomes) - failed


class _SqliteWriter:
    """The one writer thread of a SQLite database, committing queued units of work in groups."""

    def __init__(self, engine: Engine, stats: TransactionStats, linger_s: float = 0.0) -> None:
        self.stats = stats
        self.engine = engine
        self.linger_s = linger_s
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="kaipiao-sqlite-writer", daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)

    def _run(self) -> None:
        conn: Connection | None = None
        while True:
            first = self.jobs.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self.linger_s
            while len(batch) < MAX_BATCH:
                wait = deadline - time.monotonic()
                try:
                    job = self.jobs.get(timeout=wait) if wait > 0 else self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)
                    break
                batch.append(job)
            if conn is None:
                try:
                    conn = self.engine.connect()
                except Exception as exc:
                    for job in batch:
                        _settle(job, None, exc)
                    continue
            if not self._commit(conn, batch):
                # After a failed BEGIN/COMMIT the connection may be unusable: start afresh.
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _commit(self, conn: Connection, batch: list[_Job]) -> bool:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        savepoint = cursor.execute  # plain statements need none of SQLAlchemy's per-call work
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            events.forget(conn)
            for run in _runs(batch):
                outcomes.extend(_run_batch(conn, run, savepoint))
            events.seal(conn)
            conn.exec_driver_sql("COMMIT")
        except Exception as exc:  # BEGIN, the seal or COMMIT failed: nothing of it is durable
            events.forget(conn)
            self.stats.rollbacks += len(batch)
            with contextlib.suppress(Exception):  # the batch's own error is what callers get
                conn.exec_driver_sql("ROLLBACK")
            for job in batch:
                _settle(job, None, exc)
            return False
        self.stats.count(outcomes)
        for job, result, error in outcomes:
            _settle(job, result, error)
        return True


class _AloneEach(Exception):
    """A batch run without savepoints failed: run each of its jobs on its own."""


class _PgBatcher:
    """Group commit for batched units on PostgreSQL: everything queued while earlier batches
    were committing goes in one transaction. Up to `IN_FLIGHT` transactions at once, so that the
    process keeps working while a batch waits on the database (measured: with one at a time the
    API process sat idle a fifth of the time under load); the chain head's row lock orders their
    ledger events, and a batch that collides with another (a deadlock between two duplicate
    orders) is retried item by item like any failed batch."""

    IN_FLIGHT = 2

    def __init__(self, engine: AsyncEngine, stats: TransactionStats) -> None:
        self.engine = engine
        self.stats = stats
        self.loop = asyncio.get_running_loop()
        self.jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self.slots = asyncio.Semaphore(self.IN_FLIGHT)
        self.running: set[asyncio.Task[None]] = set()
        self.task = self.loop.create_task(self._run(), name="kaipiao-pg-batcher")

    def submit(self, job: _Job) -> None:
        self.jobs.put_nowait(job)

    async def _run(self) -> None:
        while True:
            batch = [await self.jobs.get()]
            await self.slots.acquire()  # while waiting for a slot, the batch grows
            while len(batch) < MAX_BATCH and not self.jobs.empty():
                batch.append(self.jobs.get_nowait())
            task = self.loop.create_task(self._commit(batch), name="kaipiao-pg-batch")
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _commit(self, batch: list[_Job]) -> None:
        try:
            try:
                outcomes = await self._transaction(batch)
            except _AloneEach:
                # The batch failed without savepoints: each job again in its own transaction,
                # so that only the one at fault fails.
                outcomes = []
                for job in batch:
                    try:
                        outcomes.extend(await self._transaction([job]))
                    except Exception as exc:  # this one's connect or commit failed
                        outcomes.append((job, None, exc))
        except Exception as exc:  # connect, BEGIN or COMMIT failed: nothing is durable
            self.stats.rollbacks += len(batch)
            for job in batch:
                _deliver(job, None, exc)
            return
        finally:
            self.slots.release()
        self.stats.count(outcomes)
        for job, result, error in outcomes:
            _deliver(job, result, error)

    async def _transaction(self, batch: list[_Job]) -> list[tuple[_Job, Any, BaseException | None]]:
        async with self.engine.connect() as conn, conn.begin():
            return await conn.run_sync(self._in_transaction, batch)

    @staticmethod
    def _in_transaction(
        conn: Connection, batch: list[_Job]
    ) -> list[tuple[_Job, Any, BaseException | None]]:
        def savepoint(statement: str) -> None:
            conn.exec_driver_sql(statement)

        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        events.forget(conn)
        runs = _runs(batch)
        try:
            if len(runs) == 1 and len(batch) > 1 and batch[0].batch is not None:
                # One run of one kind (intake under load): no savepoints, two round trips a
                # batch fewer (measured: a fifth of a batch's own cost); if it fails, the
                # whole transaction is rolled back and `_commit` runs each job alone.
                try:
                    results = _results(conn, batch)
                except Exception as exc:
                    raise _AloneEach from exc
                outcomes = [(job, result, None) for job, result in zip(batch, results, strict=True)]
            else:
                for run in runs:
                    outcomes.extend(_run_batch(conn, run, savepoint))
            events.seal(conn)
        except BaseException:
            # A connection lost mid-batch refuses even `conn.info` until rolled back: the
            # original error is the one to report, not that refusal.
            with contextlib.suppress(Exception):
                events.forget(conn)
            raise
        return outcomes

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.running:  # let the transactions under way finish and answer
            await asyncio.gather(*self.running, return_exceptions=True)
        while not self.jobs.empty():
            _deliver(self.jobs.get_nowait(), None, RuntimeError("the database was closed"))


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
        self._writer: _SqliteWriter | None = None
        self._batcher: _PgBatcher | None = None
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
    def _sqlite_writer(self) -> _SqliteWriter:
        with self._lock:
            if self._writer is None:
                assert self._sync is not None
                self._writer = _SqliteWriter(self._sync, self.stats, self.linger_s)
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
        self._sqlite_writer().submit(_Job(work, loop, future))
        return await future

    async def write_batched(self, work: BatchWork[ItemT, ResultT], item: ItemT) -> ResultT:
        """Run `item` with others queued for the same `work` (a module-level function, so that
        equal kinds are the same object), in one write transaction; its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        job = _Job(None, loop, future, work, item)
        if self._async is not None:
            if self._batcher is None or self._batcher.loop is not loop or self._batcher.task.done():
                self._batcher = _PgBatcher(self._async, self.stats)
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
# server went away or is restarting, not that the statement was wrong.
_CONNECTION_LOST = frozenset({
    "CannotConnectNowError", "ConnectionDoesNotExistError", "ConnectionFailureError",
    "InternalClientError", "InterfaceError", "PostgresConnectionError", "TooManyConnectionsError",
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
