"""`kaipiao backup` and `kaipiao restore`: a copy of the store, and putting it back with what the
platform issued since (docs/operations.md, "Recovery runbook")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from kaipiao.cli.shared import DatabaseUrl, DataDir, fail, run_db, settings_from

MARGIN = timedelta(minutes=10)  # the listing is read from this long before the backup's time


def backup(
    dest: Annotated[
        Path, typer.Argument(help="The backup file to write (its manifest beside it).")
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Copy the store while it serves: SQLite's backup API, or pg_dump on PostgreSQL."""
    from kaipiao.clock import utcnow
    from kaipiao.store import backup as store

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    url = settings.resolved_database_url()
    if dest.exists():
        fail(f"{dest} exists; a backup never overwrites one", 2)
    dest.parent.mkdir(parents=True, exist_ok=True)
    taken_at = utcnow()
    try:
        if url.startswith("sqlite"):
            if not store.sqlite_path(url).exists():
                fail(f"no SQLite store at {store.sqlite_path(url)}", 2)
            manifest = store.backup_sqlite(url, dest, taken_at)
        else:
            manifest = store.backup_postgres(url, dest, taken_at)
    except store.BackupFailed as exc:
        dest.unlink(missing_ok=True)
        fail(str(exc))
    typer.echo(f"backup of the {manifest.store} store taken at "
               f"{manifest.taken_at.isoformat(timespec='seconds')}: {dest} "
               f"({dest.stat().st_size:,} bytes)")  # fmt: skip


def restore(
    source: Annotated[Path, typer.Argument(help="A file `kaipiao backup` wrote.")],
    platform_url: Annotated[
        str | None,
        typer.Option(help="Tax platform URL to recover from. [env: KAIPIAO_PLATFORM_URL]"),
    ] = None,
    recover: Annotated[
        bool, typer.Option(help="Bring back what the platform issued since the backup.")
    ] = True,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a backup back (stop every kaipiao process first), record the restore in the ledger,
    and recover from the platform what it issued since the backup; then start kaipiao again."""
    from kaipiao.clock import utcnow
    from kaipiao.runtime import recover_once
    from kaipiao.services.recovery import mark_restore
    from kaipiao.store import backup as store

    settings = settings_from(platform_url=platform_url, data_dir=data_dir,
                             database_url=database_url)  # fmt: skip
    if recover and settings.platform_url is None:
        fail("kaipiao restore needs --platform-url to recover from (or --no-recover)", 2)
    if not source.exists():
        fail(f"no backup at {source}", 2)
    manifest = store.Manifest.read(source)
    url = settings.resolved_database_url()
    kind = "sqlite" if url.startswith("sqlite") else "postgresql"
    if manifest is not None and manifest.store != kind:
        fail(f"{source} is a {manifest.store} backup; the store is {kind}", 2)
    try:
        if kind == "sqlite":
            store.restore_sqlite(source, url)
        else:
            store.restore_postgres(source, url)
    except store.BackupFailed as exc:
        fail(str(exc))
    taken = manifest.taken_at if manifest else None
    head = run_db(settings, lambda db: mark_restore(db, backup=source.name, backup_taken_at=taken,
                                                    now=utcnow()), migrate=True)  # fmt: skip
    typer.echo(f"restored {source} (taken {taken.isoformat(timespec='seconds') if taken else '?'})"
               f"; the ledger is rolled back to event {head}, and event {head + 1} records the "
               "restore")  # fmt: skip
    if not recover:
        since = (taken or utcnow()) - MARGIN
        typer.echo(
            "not recovered from the platform (--no-recover): run `kaipiao reconcile "
            f"--recover --since {since.isoformat()}` before starting the workers"
        )
        return
    assert settings.platform_url is not None
    since = (taken or utcnow() - timedelta(days=1)) - MARGIN
    report = run_db(settings, lambda db: recover_once(settings, db, settings.platform_url or "",
                                                      since=since))  # fmt: skip
    typer.echo(
        f"recovered from the platform since {since.isoformat(timespec='seconds')}: "
        f"{report.listed} listed, {len(report.recovered)} brought back, "
        f"{len(report.settled)} settled, {len(report.contradictions)} contradictions"
    )
    for line in report.recovered + report.settled:
        typer.echo(f"  recovered {line}")
    for line in report.contradictions:
        typer.echo(f"  attention {line}")
    if report.unreachable:
        fail(f"the platform's listing did not answer for sellers {', '.join(report.unreachable)}:"
             f" run `kaipiao reconcile --recover --since {since.isoformat()}` before starting "
             "the workers")  # fmt: skip
    typer.echo(
        "invoices accepted after the backup that never reached the platform are lost; "
        "`kaipiao ledger verify` names the published heads past the restored event"
    )
