"""Start kaipiao processes (sandbox, server, worker) for integration and e2e tests."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from kaipiao.ops.processes import KAIPIAO, Running, clean_env, start_process

__all__ = [
    "KAIPIAO",
    "Running",
    "clean_env",
    "kaipiao",
    "start_process",
    "start_sandbox",
    "start_serve",
    "wait_http",
]


def start_sandbox(
    *args: str, port: int = 0, state: Path | None = None, log: Path | None = None
) -> Running:
    """Start `kaipiao sandbox` on `port` (0: any free port) and wait until it listens."""
    command = [*KAIPIAO, "sandbox", "--port", str(port), *args]
    if state is not None:
        command += ["--state", str(state)]
    if log is None:
        log = Path(tempfile.mkstemp(prefix="kaipiao-sandbox-", suffix=".log")[1])
    return start_process(command, log, r"listening on (http://\S+)")


def wait_http(url: str, timeout_s: float = 20.0, ok: Sequence[int] = (200,)) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code in ok:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout_s}s: {last}")


def start_serve(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Running:
    """Start `kaipiao serve` in `cwd` (its default data directory lands there)."""
    log = cwd / f"serve-{time.monotonic_ns()}.log"
    command = [*KAIPIAO, "serve", "--port", "0", *args]
    return start_process(command, log, r"kaipiao listening on (http://\S+)",
                         env=clean_env(**(env or {})), cwd=cwd)  # fmt: skip


def kaipiao(
    *args: str, cwd: Path | None = None, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one `kaipiao` CLI command to completion (`input`: its stdin)."""
    return subprocess.run(
        [*KAIPIAO, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
        check=check, timeout=60, input=input,
    )  # fmt: skip
