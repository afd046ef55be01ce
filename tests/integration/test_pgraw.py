"""Raw asyncpg statements inside units of work (kaipiao.store.pgraw): they share the unit's
transaction, commit and roll back with it, and refuse to run outside one."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from kaipiao.store import pgraw
from kaipiao.store.database import Database
from kaipiao.store.tables import ledger_head, sellers

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(pg_session_url: str) -> Any:
    from tests.databases import truncate_all

    await truncate_all(pg_session_url)
    db = Database(pg_session_url)
    yield db
    await db.dispose()


def _add_seller(conn: Any, seller_id: str) -> None:
    row = {"id": seller_id, "name": "甲", "tax_id": seller_id[-18:], "region": "31",
           "webhook_secret": "s", "created_at": "2026-11-27T00:00:00+00:00",
           "allowed_networks": "[]", "tax_id_check": "reject"}  # fmt: skip
    sql = pgraw.json_insert(sellers, list(row))
    pgraw.execute(conn, sql, pgraw.rows_json([row]))


async def _count(db: Database) -> int:
    return int(await db.read(lambda c: c.execute(text("SELECT count(*) FROM sellers")).scalar()))


async def test_a_raw_statement_first_in_a_unit_commits_with_it(pg: Database) -> None:
    await pg.write(lambda conn: _add_seller(conn, "sel_000000000000000001"))
    assert await _count(pg) == 1


async def test_a_raw_statement_rolls_back_with_its_unit(pg: Database) -> None:
    def fails(conn: Any) -> None:
        _add_seller(conn, "sel_000000000000000002")
        raise RuntimeError("the unit fails after its raw insert")

    with pytest.raises(RuntimeError, match="after its raw insert"):
        await pg.write(fails)
    assert await _count(pg) == 0


async def test_outside_a_transaction_a_raw_statement_is_refused(pg: Database) -> None:
    async with pg.engine.connect() as conn:  # type: ignore[union-attr]
        with pytest.raises(RuntimeError, match="open transaction"):
            await conn.run_sync(lambda c: pgraw.fetch(c, "SELECT 1"))


def test_only_the_tables_columns_can_be_named() -> None:
    with pytest.raises(KeyError):
        pgraw.json_insert(ledger_head, ["seq", "hash; DROP TABLE ledger_head"])
    assert pgraw.json_insert(ledger_head, ["seq"]).startswith("INSERT INTO ledger_head (seq)")
