"""The `kaipiao` command: each subcommand parses flags, builds Settings, calls one service."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from kaipiao import __version__
from kaipiao.sandbox.faults import PROFILES

app = typer.Typer(
    name="kaipiao",
    help="kaipiao: a self-hosted e-invoice (fapiao) issuing gateway.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """kaipiao: a self-hosted e-invoice (fapiao) issuing gateway."""


@app.command()
def version() -> None:
    """Print kaipiao's version."""
    typer.echo(__version__)


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one and prints it).")] = 8700,
    profile: Annotated[str, typer.Option(help=f"Fault profile: {', '.join(PROFILES)}.")] = "normal",
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    state: Annotated[
        Path | None, typer.Option(help="Keep what was issued in this file across restarts.")
    ] = None,
) -> None:
    """Run the sandbox tax platform (a real HTTP server with fault profiles)."""
    if profile not in PROFILES:
        raise typer.BadParameter(
            f"unknown profile; known: {', '.join(PROFILES)}", param_hint="--profile"
        )
    from kaipiao.sandbox.run import install_event_loop, serve_sandbox

    install_event_loop()
    asyncio.run(serve_sandbox(host, port, profile, seed, state))


def main() -> None:
    """Console-script entry point."""
    app()
