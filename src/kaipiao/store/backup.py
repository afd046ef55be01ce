"""Backups of the store, and putting one back.

SQLite: SQLite's online backup API (`sqlite3.Connection.backup`) copies the database page by page
while kaipiao keeps serving; the copy is one consistent snapshot (a write during the copy makes
it start over the pages it changed, so under heavy load it finishes at a quiet moment). WAL mode
lets readers and the group-commit writer go on meanwhile.

PostgreSQL: `pg_dump --format=custom` (one consistent snapshot, a repeatable-read transaction) for
small deployments; `pg_restore --clean --if-exists` puts it back into an existing database. For
RPO under a minute, use a base backup plus WAL archiving instead (docs/operations.md).

Each backup has a manifest beside it (`<file>.json`): the store kind and when it was taken, which
recovery then uses as the point from which the platform's listing is read.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url


@dataclass(frozen=True, slots=True)
class Manifest:
    store: str  # sqlite | postgresql
    taken_at: datetime  # before the copy began: everything committed earlier is in it
    file: str

    def write(self, backup: Path) -> None:
        data = {"store": self.store, "taken_at": self.taken_at.isoformat(), "file": self.file}
        manifest_path(backup).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def read(cls, backup: Path) -> Manifest | None:
        path = manifest_path(backup)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(data["store"], datetime.fromisoformat(data["taken_at"]), data["file"])


class BackupFailed(RuntimeError):
    """A backup or restore could not be made; the message says why."""


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + ".json")


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq (pg_dump, pg_restore) takes it, several hosts included."""
    parsed = make_url(url)
    query = dict(parsed.query)
    hosts = query.pop("host", None)
    if isinstance(hosts, str):
        hosts = (hosts,)
    authority = ",".join(hosts) if hosts else (
        f"{parsed.host or ''}{f':{parsed.port}' if parsed.port else ''}"
    )  # fmt: skip
    user = parsed.username or ""
    if parsed.password:
        user += f":{parsed.password}"
    params = "&".join(f"{k}={v}" for k, v in query.items() if isinstance(v, str))
    return (f"postgresql://{user}{'@' if user else ''}{authority}/{parsed.database or ''}"
            + (f"?{params}" if params else ""))  # fmt: skip


def backup_sqlite(url: str, dest: Path, taken_at: datetime) -> Manifest:
    """An online, consistent copy of the SQLite store at `url` into `dest`."""
    source = sqlite3.connect(sqlite_path(url), timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target, pages=1024)
    except sqlite3.Error as exc:
        raise BackupFailed(f"the SQLite backup failed: {exc}") from exc
    finally:
        target.close()
        source.close()
    manifest = Manifest("sqlite", taken_at, dest.name)
    manifest.write(dest)
    return manifest


def backup_postgres(
    url: str, dest: Path, taken_at: datetime, bin_dir: Path | None = None
) -> Manifest:
    """`pg_dump --format=custom` of the database at `url` into `dest`."""
    _run(bin_dir, "pg_dump", "--format=custom", "--no-owner", f"--file={dest}",
         f"--dbname={libpq_url(url)}")  # fmt: skip
    manifest = Manifest("postgresql", taken_at, dest.name)
    manifest.write(dest)
    return manifest


def restore_sqlite(backup: Path, url: str) -> None:
    """Put the backup in place of the SQLite store at `url` (no process may have it open)."""
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(backup, path)


def restore_postgres(backup: Path, url: str, bin_dir: Path | None = None) -> None:
    """Put a pg_dump backup back into the (existing, possibly empty) database at `url`."""
    _run(bin_dir, "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
         f"--dbname={libpq_url(url)}", str(backup))  # fmt: skip


def _run(bin_dir: Path | None, tool: str, *args: str) -> None:
    command = str(bin_dir / tool) if bin_dir else _find(tool)
    done = subprocess.run(  # noqa: S603 - PostgreSQL's own tool, an argument list
        [command, *args], capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        raise BackupFailed(f"{tool} failed: {done.stderr.strip() or done.stdout.strip()}")


def _find(tool: str) -> str:
    """The tool on PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(tool)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)  # fmt: skip
    if not versions:
        raise BackupFailed(f"{tool} not found (apt-get install postgresql-client)")
    return str(versions[-1])
