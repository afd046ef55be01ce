"""A throwaway PostgreSQL primary and streaming hot standby, built from the machine's binaries.

`initdb` a primary into a temporary directory on a spare port, `pg_basebackup -R` a standby from
it on another, wait until the standby streams (and, with `sync`, is the primary's synchronous
standby: `synchronous_standby_names` names it and `synchronous_commit` is on, so a commit returns
only once the standby has flushed it). `kill_primary` SIGKILLs the primary's whole process group
(the postmaster and every backend: a crash, not a shutdown); `promote` makes the standby the
primary, as Patroni or CloudNativePG would. `remove` stops both and deletes their directories.

Run as root (CI containers), the servers run as the `postgres` user: PostgreSQL refuses root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DATABASE = "kaipiao"
USER = "kaipiao"
STANDBY_NAME = "kaipiao_standby"


def postgres_bin() -> Path:
    """The newest of Debian's /usr/lib/postgresql/*/bin that has initdb."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if not found:
        raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql (apt-get install "
                           "postgresql)")  # fmt: skip
    return found[-1].parent


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    data: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.name}.log"


class PgCluster:
    """A primary and one streaming standby in a temporary directory (see the module text)."""

    def __init__(self, *, sync: bool, log_dir: Path | None = None) -> None:
        self.sync = sync
        self.bin = postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="kaipiao-pg-"))
        self.log_dir = log_dir
        self.primary = Node("primary", self.root / "primary", spare_port())
        self.standby = Node("standby", self.root / "standby", spare_port())
        self._as: dict[str, object] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid}
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)

    @property
    def url(self) -> str:
        """The multi-host URL kaipiao is given: whichever of the two accepts writes."""
        return (f"postgresql://{USER}@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
                f"/{DATABASE}?target_session_attrs=read-write")  # fmt: skip

    def node_url(self, node: Node) -> str:
        return f"postgresql://{USER}@127.0.0.1:{node.port}/{DATABASE}"

    def _run(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - PostgreSQL's own tools, argument lists
            [str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, timeout=120,
            check=False, **self._as,  # type: ignore[call-overload]
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stdout}{done.stderr}")
        return str(done.stdout)

    def sql(self, node: Node, statement: str) -> str:
        return self._run("psql", "-h", "127.0.0.1", "-p", str(node.port), "-U", USER, "-d",
                         DATABASE, "-Atc", statement).strip()  # fmt: skip

    def _start(self, node: Node) -> None:
        with node.log.open("ab") as out:
            node.process = subprocess.Popen(  # noqa: S603 - the postgres server binary
                [str(self.bin / "postgres"), "-D", str(node.data)], stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, **self._as,  # type: ignore[call-overload]
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = subprocess.run(  # noqa: S603
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(node.port)],
                capture_output=True, check=False,
            )  # fmt: skip
            if ready.returncode == 0:
                return
            if node.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{node.name} did not start:\n{node.log.read_text(errors='replace')}")

    def start(self) -> None:
        """Build and start both servers; return once the standby streams (synchronously with
        `sync`)."""
        p, s = self.primary, self.standby
        self._run("initdb", "-D", str(p.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--no-instructions")  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(p.port),
            "unix_socket_directories": f"'{self.root}'", "wal_level": "replica",
            "max_wal_senders": "5", "hot_standby": "on", "max_connections": "200",
            "shared_buffers": "64MB", "wal_keep_size": "256MB", "synchronous_commit": "on",
        }  # fmt: skip
        with (p.data / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        with (p.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self._start(p)
        self._run("createdb", "-h", "127.0.0.1", "-p", str(p.port), "-U", USER, DATABASE)
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(p.port), "-U", USER, "-D",
                  str(s.data), "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        with (s.data / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {s.port}\n")
            conf.write(f"primary_conninfo = 'host=127.0.0.1 port={p.port} user={USER} "
                       f"application_name={STANDBY_NAME}'\n")  # fmt: skip
        self._start(s)
        if self.sync:  # only now: with no standby yet, every commit would wait for one
            self.sql(p, f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            self.sql(p, "SELECT pg_reload_conf()")
        want = "sync" if self.sync else "async"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.sql(p, "SELECT state || ' ' || sync_state FROM pg_stat_replication")
            if state == f"streaming {want}":
                return
            time.sleep(0.2)
        raise RuntimeError(f"the standby does not stream ({want}): {state!r}")

    def kill_primary(self) -> None:
        """SIGKILL the primary's postmaster and every backend at once (a crash)."""
        process = self.primary.process
        assert process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def promote(self) -> None:
        """Make the standby the primary and wait until it takes writes."""
        self._run("pg_ctl", "promote", "-w", "-D", str(self.standby.data))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.sql(self.standby, "SELECT pg_is_in_recovery()") == "f":
                return
            time.sleep(0.1)
        raise RuntimeError("the standby did not leave recovery after promotion")

    def remove(self) -> None:
        """Stop whatever runs and delete the directories (logs copied to `log_dir` first)."""
        for node in (self.standby, self.primary):
            if node.process is not None and node.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGTERM)
                try:
                    node.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(node.process.pid, signal.SIGKILL)
                    node.process.wait(timeout=10)
            if self.log_dir is not None and node.log.exists():
                self.log_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(node.log, self.log_dir / f"postgres-{node.name}.log")
        shutil.rmtree(self.root, ignore_errors=True)
