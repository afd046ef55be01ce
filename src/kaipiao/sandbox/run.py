"""Run a sandbox platform until SIGINT/SIGTERM (the `kaipiao sandbox` command)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from kaipiao.sandbox.faults import build_faults
from kaipiao.sandbox.server import SandboxServer
from kaipiao.sandbox.state import SandboxState


def install_event_loop() -> None:
    """Use uvloop when it is installed: the sandbox must hold thousands of slow calls cheaply."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve_sandbox(
    host: str,
    port: int,
    profile: str,
    seed: int,
    state_path: Path | None,
    nuonuo_apps: dict[str, str] | None = None,
) -> None:
    state = SandboxState(
        seed=seed, faults=build_faults({"profile": profile}), journal_path=state_path
    )
    server = SandboxServer(state, host, port, nuonuo_apps=nuonuo_apps)
    await server.start()
    print(
        f"kaipiao sandbox listening on {server.url} (profile {profile}, seed {seed})",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    print("kaipiao sandbox stopped", file=sys.stderr, flush=True)
