"""The `kaipiao` command. Each subcommand parses its flags, builds Settings and calls one function;
the modules of this package hold one command group each (their common options and helpers are in
`kaipiao.cli.shared`), and the table at the end lists every command in the order `kaipiao --help`
shows them.

Failures an operator can act on never end in a traceback: one handler, on the root group, turns
domain and service errors, an unreachable database and a file that cannot be read or written into
one `error: …` line on stderr and exit status 1 (2 for a wrong flag value, as for usage errors).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from kaipiao import __version__
from kaipiao.cli import backup, drill, invoices, keys, ledger, ops, run, sellers
from kaipiao.cli import operators as _operators  # noqa: F401 - registers `operator add|list|disable`
from kaipiao.cli.shared import exit_code, explain
from kaipiao.cli.warn import warn_app


class _Commands(TyperGroup):
    """The root group: every command runs inside its `invoke`, so expected failures end here."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context, private to typer
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`kaipiao … | head`): nothing is wrong with kaipiao. Point
            # stdout at /dev/null so the interpreter's final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as exc:
            message = explain(exc)
            if message is None:
                raise  # a bug: its traceback is what a report needs
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(exit_code(exc)) from None


app = typer.Typer(
    name="kaipiao",
    help="kaipiao: a self-hosted e-invoice (fapiao) issuing gateway.",
    cls=_Commands,
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
    """Console-script entry point. Everything kaipiao creates (database, WAL, keys, logs,
    checkpoints, archives) is private to its user: files 0600, directories 0700."""
    os.umask(0o077)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


app.command()(run.serve)
app.command()(run.worker)
app.command()(run.migrate)
app.command()(ledger.purge)
app.command()(ops.reconcile)
app.command()(backup.backup)
app.command()(backup.restore)
app.command("operator-key")(sellers.operator_key)
app.command()(ops.status)
app.command()(run.sandbox)
app.command()(ops.plan)
app.command()(ops.bench)
app.command()(drill.drill)
app.add_typer(sellers.seller_app, name="seller")
sellers.seller_app.add_typer(keys.seller_key_app, name="key")
sellers.seller_app.add_typer(keys.webhook_secret_app, name="webhook-secret")
app.add_typer(keys.operator_app, name="operator")
app.add_typer(invoices.invoices_app, name="invoices")
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(ledger.archive_app, name="archive")
app.add_typer(warn_app, name="warn")
