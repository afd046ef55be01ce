"""Test databases: a migrated SQLite template copied per test, and one PostgreSQL database per
test session (migrated once, truncated between tests)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from kaipiao.ledger.chain import GENESIS
from kaipiao.store.database import Database
from kaipiao.store.migrate import upgrade
from kaipiao.store.tables import metadata

PG_SERVER = os.environ.get("KAIPIAO_TEST_PG", "postgres@127.0.0.1:5432")


def pg_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    return f"{driver}://{PG_SERVER}/{name}"


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run set-up on its own loop in a thread: fixtures may be set up inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(f"postgresql://{PG_SERVER}/test")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


def create_pg_database(name: str) -> str:
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    _run(_admin(f'CREATE DATABASE "{name}"'))
    url = pg_url(name)
    _run(_migrate(url))
    return url


def drop_pg_database(name: str) -> None:
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_sqlite_template(path: Path) -> Path:
    _run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


def sqlite_copy(template: Path, target: Path) -> str:
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"


async def truncate_all(url: str) -> None:
    db = Database(url)
    try:
        names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
        await db.write(
            lambda conn: conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        )
        # The chain's head row is part of the schema (migration 0003), not data.
        await db.write(
            lambda conn: conn.execute(
                text("INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, :genesis)"),
                {"genesis": GENESIS},
            )
        )
    finally:
        await db.dispose()
