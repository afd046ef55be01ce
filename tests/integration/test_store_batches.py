"""Batched units of work: many callers, one statement and one commit, each caller its own answer."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from kaipiao.store.database import Database


def _setup(conn: Connection) -> None:
    conn.execute(text("DROP TABLE IF EXISTS batch_probe"))  # PostgreSQL's is shared by tests
    conn.execute(text("CREATE TABLE batch_probe (n INTEGER PRIMARY KEY)"))


def _insert_all(conn: Connection, items: list[int]) -> list[int]:
    """Inserts every item in one statement; a negative item breaks the whole statement."""
    if any(n < 0 for n in items):
        raise ValueError(f"negative item in {items}")
    conn.execute(text("INSERT INTO batch_probe (n) VALUES (:n)"), [{"n": n} for n in items])
    return [n * 10 for n in items]


async def _stored(db: Database) -> list[int]:
    rows = await db.read(lambda c: c.execute(text("SELECT n FROM batch_probe ORDER BY n")).all())
    return [row[0] for row in rows]


async def test_concurrent_items_share_a_batch_and_each_gets_its_result(database: Database) -> None:
    await database.exclusive(_setup)
    results = await asyncio.gather(*(database.write_batched(_insert_all, n) for n in range(200)))
    assert results == [n * 10 for n in range(200)]
    assert await _stored(database) == list(range(200))


async def test_one_bad_item_fails_alone_and_the_rest_are_kept(database: Database) -> None:
    await database.exclusive(_setup)
    items = [1, 2, -3, 4, 5]
    outcomes = await asyncio.gather(
        *(database.write_batched(_insert_all, n) for n in items), return_exceptions=True
    )
    assert outcomes[:2] == [10, 20] and outcomes[3:] == [40, 50]
    assert isinstance(outcomes[2], ValueError)
    assert await _stored(database) == [1, 2, 4, 5]


async def test_a_batch_that_breaks_a_constraint_rolls_back_only_the_offender(
    database: Database,
) -> None:
    await database.exclusive(_setup)
    assert await database.write_batched(_insert_all, 7) == 70
    outcomes = await asyncio.gather(
        *(database.write_batched(_insert_all, n) for n in (6, 7, 8)), return_exceptions=True
    )
    assert outcomes[0] == 60 and outcomes[2] == 80
    assert isinstance(outcomes[1], Exception)  # the unique key: 7 is there already
    assert await _stored(database) == [6, 7, 8]


@pytest.mark.parametrize("count", [1, 3])
async def test_plain_writes_and_batches_interleave(database: Database, count: int) -> None:
    await database.exclusive(_setup)

    def plain(conn: Connection) -> str:
        conn.execute(text("INSERT INTO batch_probe (n) VALUES (1000)"))
        return "plain"

    results = await asyncio.gather(
        *(database.write_batched(_insert_all, n) for n in range(count)),
        database.write(plain),
        *(database.write_batched(_insert_all, n) for n in range(100, 100 + count)),
    )
    assert results[count] == "plain"
    assert await _stored(database) == [*range(count), *range(100, 100 + count), 1000]
