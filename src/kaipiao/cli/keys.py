"""Credentials: `seller key list|rotate|revoke`, `seller webhook-secret rotate` and
`operator key create|list|rotate|revoke`. A new key or secret is printed once; only a hash of
a key is stored. Revocation takes effect in the store at once and on running API processes
within their key cache time (30 s; docs/security.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from kaipiao.cli.shared import AsJson, DatabaseUrl, DataDir, run_db, settings_from

if TYPE_CHECKING:
    from kaipiao.services.keys import NewKey
    from kaipiao.store.sellers import KeyInfo

seller_key_app = typer.Typer(
    help="A seller's API keys: list, rotate, revoke.", no_args_is_help=True
)
webhook_secret_app = typer.Typer(help="A seller's webhook signing secret.", no_args_is_help=True)
operator_app = typer.Typer(help="Operator (admin) keys.", no_args_is_help=True)
operator_key_app = typer.Typer(help="Create, list, rotate, revoke operator keys.",
                               no_args_is_help=True)  # fmt: skip
operator_app.add_typer(operator_key_app, name="key")

Overlap = Annotated[
    float,
    typer.Option(help="Hours the replaced key or secret keeps working (0: stops at once)."),
]


def _hours(value: float) -> timedelta:
    return timedelta(hours=value)


def _print_key(new: NewKey, as_json: bool) -> None:
    ends = new.previous_expire_at.isoformat() if new.previous_expire_at else None
    if as_json:
        typer.echo(json.dumps({"key_id": new.key_id, "api_key": new.api_key,
                               "previous_expire_at": ends}))  # fmt: skip
        return
    typer.echo(f"key {new.key_id}")
    typer.echo(f"API key (shown once, store it now): {new.api_key}")
    if ends:
        typer.echo(f"the keys it replaces work until {ends}")


def _print_keys(found: list[KeyInfo], as_json: bool) -> None:
    def when(moment: object) -> str | None:
        return moment.isoformat() if moment is not None else None  # type: ignore[attr-defined]

    rows = [{"key_id": k.id, "prefix": k.prefix, "created_at": when(k.created_at),
             "expires_at": when(k.expires_at), "revoked_at": when(k.revoked_at)}
            for k in found]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        state = (
            ("revoked " + str(row["revoked_at"]))
            if row["revoked_at"]
            else (("expires " + str(row["expires_at"])) if row["expires_at"] else "live")
        )
        typer.echo(f"{row['key_id']}  {row['prefix']}…  created {row['created_at']}  {state}")


@seller_key_app.command("list")
def seller_key_list(
    seller_id: str, as_json: AsJson = False, data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:  # fmt: skip
    """List a seller's keys (ids and first characters; never the keys)."""
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    _print_keys(run_db(settings, lambda db: keys.list_keys(db, seller_id)), as_json)


@seller_key_app.command("rotate")
def seller_key_rotate(
    seller_id: str, overlap_hours: Overlap = 24.0, as_json: AsJson = False,
    data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:  # fmt: skip
    """Make a new key for the seller (printed once); its other keys end after the overlap."""
    from kaipiao.clock import utcnow
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    new = run_db(settings, lambda db: keys.rotate_key(
        db, seller_id, now=utcnow(), overlap=_hours(overlap_hours)), migrate=True)  # fmt: skip
    _print_key(new, as_json)


@seller_key_app.command("revoke")
def seller_key_revoke(
    seller_id: str,
    key_id: Annotated[str | None, typer.Option(help="Only this key (default: all).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke the seller's keys (or one of them) at once."""
    from kaipiao.clock import utcnow
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    done = run_db(settings, lambda db: keys.revoke(
        db, now=utcnow(), seller_id=seller_id, key_id=key_id), migrate=True)  # fmt: skip
    typer.echo(f"revoked {', '.join(done)} (running servers stop accepting within 30 s)")


@webhook_secret_app.command("rotate")
def webhook_secret_rotate(
    seller_id: str, overlap_hours: Overlap = 24.0, as_json: AsJson = False,
    data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:  # fmt: skip
    """Make a new webhook signing secret (printed once); deliveries carry both signatures
    during the overlap."""
    from kaipiao.clock import utcnow
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    new = run_db(settings, lambda db: keys.rotate_webhook_secret(
        db, seller_id, now=utcnow(), overlap=_hours(overlap_hours)), migrate=True)  # fmt: skip
    until = new.previous_valid_until.isoformat()
    if as_json:
        typer.echo(
            json.dumps({"webhook_secret": new.webhook_secret, "previous_valid_until": until})
        )
        return
    typer.echo(f"webhook secret (shown once, store it now): {new.webhook_secret}")
    typer.echo(f"deliveries are signed with the old secret too until {until}")


@operator_key_app.command("create")
def operator_key_create(
    as_json: AsJson = False, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Create one more operator key (printed once)."""
    from kaipiao.clock import utcnow
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    new = run_db(settings, lambda db: keys.create_operator_key(db, now=utcnow()), migrate=True)
    _print_key(new, as_json)


@operator_key_app.command("list")
def operator_key_list(
    as_json: AsJson = False, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """List the operator keys (ids and first characters)."""
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    _print_keys(run_db(settings, lambda db: keys.list_keys(db, None)), as_json)


@operator_key_app.command("rotate")
def operator_key_rotate(
    overlap_hours: Overlap = 24.0, as_json: AsJson = False, data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:  # fmt: skip
    """Make a new operator key (printed once); the other operator keys end after the overlap."""
    from kaipiao.clock import utcnow
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    new = run_db(settings, lambda db: keys.rotate_key(
        db, None, now=utcnow(), overlap=_hours(overlap_hours)), migrate=True)  # fmt: skip
    _print_key(new, as_json)


@operator_key_app.command("revoke")
def operator_key_revoke(
    key_id: str, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Revoke one key (an operator's or a seller's) by its id, at once."""
    from kaipiao.clock import utcnow
    from kaipiao.services import keys

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    done = run_db(settings, lambda db: keys.revoke(db, now=utcnow(), key_id=key_id), migrate=True)
    typer.echo(f"revoked {', '.join(done)} (running servers stop accepting within 30 s)")
