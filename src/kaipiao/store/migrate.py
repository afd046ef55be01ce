"""Alembic migrations, run from code (`kaipiao migrate`, `kaipiao serve`)."""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from kaipiao.store.database import Database


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "kaipiao.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str | None:
    """The newest migration shipped with this code (read once: /readyz asks on every probe)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent)."""

    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    await database.exclusive(run)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(database: Database) -> str | None:
    return await database.read(_revision)


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this code ships, its head included."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())


async def is_current(database: Database) -> bool:
    """Whether the schema has every migration this code ships: at this code's head, or at a
    revision this code does not know, which a newer release applied first (a rolling upgrade
    migrates before it replaces the old replicas; migrations only add, docs/deploy.md). A known
    older revision, or none, is not current."""
    current = await current_revision(database)
    if current is None:
        return False
    return current == head_revision() or current not in known_revisions()
