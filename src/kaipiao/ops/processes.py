"""Start and stop whole kaipiao processes (drills, benchmarks, end-to-end tests).

Each process writes its output to a log file; it is ready when a line of the log matches a
regular expression whose one group is the URL it listens on (or its name).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

KAIPIAO = [sys.executable, "-m", "kaipiao"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any KAIPIAO_ variable of the caller's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIPIAO_")}
    env.update(extra)
    return env


class StartFailed(RuntimeError):
    """A process exited or stayed silent before it was ready; the message holds its log."""


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """kill -9, as a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_process(
    command: Sequence[str],
    log: Path,
    ready: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    cwd: Path | None = None,
) -> Running:
    """Start `command` with its output in `log`; wait for a line matching `ready` (one group)."""
    with log.open("ab") as out:
        start = out.tell()
        process = subprocess.Popen(  # noqa: S603 - our own commands, argument lists, no shell
            list(command), stdout=out, stderr=subprocess.STDOUT, env=env or clean_env(), cwd=cwd
        )
    pattern = re.compile(ready)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(start)
            match = pattern.search(f.read().decode(errors="replace"))
        if match:
            return Running(process, match.group(1), log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise StartFailed(f"{' '.join(command)} did not start:\n{log.read_text(errors='replace')}")


def run_kaipiao(*args: str, env: dict[str, str] | None = None) -> str:
    """Run one `kaipiao` command to completion; its standard output, or StartFailed."""
    done = subprocess.run(  # noqa: S603 - `kaipiao` itself, an argument list, no shell
        [*KAIPIAO, *args], env=env or clean_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise StartFailed(f"kaipiao {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout
