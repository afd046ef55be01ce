"""The `kaipiao` command: each subcommand parses flags, builds Settings, calls one service."""

from __future__ import annotations

import typer

from kaipiao import __version__

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


def main() -> None:
    """Console-script entry point."""
    app()
