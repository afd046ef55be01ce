"""What every command module shares: the common options, Settings from flags, the database's life
cycle (`run_db`), and the words for a failure an operator can act on (`explain`, used by the one
handler in `kaipiao.cli` and by `invoices requeue` for each id it refuses).

A module of its own, not the package's `__init__`, so that the command modules and the package
that registers them do not import each other.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError

from kaipiao.config import Settings
from kaipiao.domain.errors import DomainError
from kaipiao.services.errors import ServiceError

if TYPE_CHECKING:
    from kaipiao.store.database import Database

T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option(help="Data directory (SQLite store, sandbox state). [env: KAIPIAO_DATA_DIR]"),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="postgresql://… or sqlite:///PATH. [env: KAIPIAO_DATABASE_URL]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

USAGE_CODES = frozenset({"invalid_provider_account"})
"""Codes of errors that refuse a value given on the command line: exit 2, like a usage error."""


def settings_from(**flags: Any) -> Settings:
    """Settings from KAIPIAO_* variables, overridden by the flags given on the command line."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"])
            typer.echo(f"error: {name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop the command with `error: message` on stderr (code 2: a usage error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_db(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, migrate: bool = False
) -> T:
    """Open the configured database, bring its schema up to date if `migrate`, run `work` on it,
    and dispose of it: the one place a command touches a database's life cycle."""
    # Imported here, not at the top: the store and its wiring take seconds to import, and
    # `kaipiao --help`, `plan` or `sandbox` need neither.
    from kaipiao.bootstrap import database_for
    from kaipiao.store.migrate import upgrade

    async def run() -> T:
        db = database_for(settings)
        try:
            if migrate:
                await upgrade(db)
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def explain(exc: BaseException) -> str | None:
    """The one-line message for a failure an operator can act on; None for a bug."""
    if isinstance(exc, DomainError | ServiceError):
        return f"{exc.message} ({exc.code})"
    network = isinstance(exc, ConnectionError | TimeoutError | socket.gaierror)
    if isinstance(exc, OSError) and not network:
        return str(exc)  # a file or directory the command needs: the text names it
    from kaipiao.store.database import is_store_down

    if is_store_down(exc):
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"the database is unavailable: {detail} (store_unavailable)"
    return None


def exit_code(exc: BaseException) -> int:
    """2 for an error that refuses a flag's value, 1 for any other explained failure."""
    return 2 if getattr(exc, "code", None) in USAGE_CODES else 1
