"""Alembic environment: kaipiao always passes an open connection (see kaipiao.store.migrate)."""

from __future__ import annotations

from alembic import context

from kaipiao.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `kaipiao migrate`, which supplies the connection")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
context.run_migrations()
