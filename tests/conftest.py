from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kaipiao.store.database import Database
from tests.databases import (
    create_pg_database,
    create_sqlite_template,
    drop_pg_database,
    sqlite_copy,
    truncate_all,
)

# Tests start from a clean environment: no KAIPIAO_* setting of the developer's leaks in.
for _name in [n for n in os.environ if n.startswith("KAIPIAO_") and n != "KAIPIAO_TEST_PG"]:
    del os.environ[_name]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_sqlite_template(tmp_path_factory.mktemp("template") / "kaipiao.db")


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    name = f"kaipiao_test_{os.getpid()}"
    url = create_pg_database(name)
    yield url
    drop_pg_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "kaipiao.db")
    url: str = request.getfixturevalue("pg_session_url")
    await truncate_all(url)
    return url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    yield db
    await db.dispose()
