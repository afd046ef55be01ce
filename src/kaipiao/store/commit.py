"""Group commit: the SQLite writer thread and the PostgreSQL batcher that `Database` hands its
write units to (the module text of `kaipiao.store.database` gives the design and its measures).

A job is one unit of work, or one item of a batched unit; consecutive items of one batched kind
run as one call; each group runs in a SAVEPOINT, so a failing one is undone alone (a failed
batch is retried item by item), and every caller is answered only after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from kaipiao.store import events

MAX_BATCH = 256


@dataclass(slots=True)
class Job:
    work: Callable[[Connection], Any] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    batch: Callable[[Connection, list[Any]], list[Any]] | None = None
    item: Any = None


def _runs(jobs: list[Job]) -> list[list[Job]]:
    """Consecutive jobs of one batch kind grouped together; every other job alone."""
    runs: list[list[Job]] = []
    for job in jobs:
        if runs and job.batch is not None and runs[-1][0].batch is job.batch:
            runs[-1].append(job)
        else:
            runs.append([job])
    return runs


def _results(conn: Connection, group: list[Job]) -> list[Any]:
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
    conn: Connection, run: list[Job], savepoint: Callable[[str], None]
) -> list[tuple[Job, Any, BaseException | None]]:
    """One run of jobs inside savepoints: a failed batch is retried item by item, so only the
    item at fault fails."""
    attempts = [run]
    outcomes: list[tuple[Job, Any, BaseException | None]] = []
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


def deliver(job: Job, result: Any, error: BaseException | None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)


def _settle(job: Job, result: Any, error: BaseException | None) -> None:
    """`deliver` from another thread."""
    job.loop.call_soon_threadsafe(deliver, job, result, error)


@dataclass
class TransactionStats:
    """Units of work committed and rolled back (a unit undone alone inside a group commit
    counts as one rollback), for the `kaipiao_db_*_total` metrics."""

    commits: int = 0
    rollbacks: int = 0

    def count(self, outcomes: list[tuple[Job, Any, BaseException | None]]) -> None:
        failed = sum(1 for _, _, error in outcomes if error is not None)
        self.rollbacks += failed
        self.commits += len(outcomes) - failed


class SqliteWriter:
    """The one writer thread of a SQLite database, committing queued units of work in groups."""

    def __init__(self, engine: Engine, stats: TransactionStats, linger_s: float = 0.0) -> None:
        self.stats = stats
        self.engine = engine
        self.linger_s = linger_s
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="kaipiao-sqlite-writer", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
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

    def _commit(self, conn: Connection, batch: list[Job]) -> bool:
        outcomes: list[tuple[Job, Any, BaseException | None]] = []
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


class PgBatcher:
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
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.slots = asyncio.Semaphore(self.IN_FLIGHT)
        self.running: set[asyncio.Task[None]] = set()
        self.task = self.loop.create_task(self._run(), name="kaipiao-pg-batcher")

    def submit(self, job: Job) -> None:
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

    async def _commit(self, batch: list[Job]) -> None:
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
                deliver(job, None, exc)
            return
        finally:
            self.slots.release()
        self.stats.count(outcomes)
        for job, result, error in outcomes:
            deliver(job, result, error)

    async def _transaction(self, batch: list[Job]) -> list[tuple[Job, Any, BaseException | None]]:
        async with self.engine.connect() as conn, conn.begin():
            return await conn.run_sync(self._in_transaction, batch)

    @staticmethod
    def _in_transaction(
        conn: Connection, batch: list[Job]
    ) -> list[tuple[Job, Any, BaseException | None]]:
        def savepoint(statement: str) -> None:
            conn.exec_driver_sql(statement)

        outcomes: list[tuple[Job, Any, BaseException | None]] = []
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
            deliver(self.jobs.get_nowait(), None, RuntimeError("the database was closed"))
