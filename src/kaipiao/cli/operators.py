"""The console's operators: `operator add | list | disable` (keys: `operator key`, cli/keys.py).

`operator add` prints a one-time sign-in token (valid a day, used once) unless
`--password-stdin` sets a password; either is stored only as an argon2id hash."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from kaipiao.cli.keys import operator_app
from kaipiao.cli.shared import AsJson, DatabaseUrl, DataDir, run_db, settings_from

Role = Annotated[str, typer.Option(help="viewer (reads), operator (acts on invoices), admin.")]


@operator_app.command("add")
def operator_add(
    name: Annotated[str, typer.Option(help="The operator's sign-in name.")],
    role: Role = "viewer",
    password_stdin: Annotated[
        bool, typer.Option(help="Read a password (12+ characters) from stdin instead.")
    ] = False,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a console operator; prints a one-time sign-in token (shown once)."""
    from kaipiao.clock import utcnow
    from kaipiao.services import operators

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    settings = settings_from(data_dir=data_dir, database_url=database_url)
    new = run_db(settings, lambda db: operators.add_operator(
        db, name=name, role=role, now=utcnow(), password=password), migrate=True)  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"operator_id": new.operator_id, "name": new.name,
                               "role": new.role, "sign_in_token": new.sign_in_token}))  # fmt: skip
        return
    typer.echo(f"operator {new.name} ({new.role}) {new.operator_id}")
    if new.sign_in_token:
        typer.echo(f"one-time sign-in token (shown once, valid 24 h): {new.sign_in_token}")


@operator_app.command("list")
def operator_list(
    as_json: AsJson = False, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """List the console's operators (never their secrets)."""
    from kaipiao.services import operators

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    found = run_db(settings, operators.list_operators)
    rows = [{"name": o.name, "role": o.role, "id": o.id, "disabled": o.disabled_at is not None}
            for o in found]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        typer.echo(f"{row['name']}  {row['role']}  {row['id']}" +
                   ("  disabled" if row["disabled"] else ""))  # fmt: skip


@operator_app.command("disable")
def operator_disable(name: str, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Disable an operator; their console sessions end at once."""
    from kaipiao.clock import utcnow
    from kaipiao.services import operators

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    run_db(settings, lambda db: operators.disable(db, name, now=utcnow()), migrate=True)
    typer.echo(f"operator {name} disabled")
