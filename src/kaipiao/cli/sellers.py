"""Sellers and keys: `seller add | list | demo-key` and `operator-key`."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer

from kaipiao.cli.shared import AsJson, DatabaseUrl, DataDir, fail, run_db, settings_from
from kaipiao.domain.credit_code import CheckMode

if TYPE_CHECKING:
    from kaipiao.services.providers import NuonuoCredentials

seller_app = typer.Typer(help="Register and list sellers.", no_args_is_help=True)


def _decimal(flag: str, text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        fail(f"{flag} {text!r} is not a decimal amount", 2)


def _credentials(
    platform: str,
    app_key: str | None,
    app_secret: str | None,
    access_token: str | None,
    tax_num: str | None,
) -> NuonuoCredentials | None:
    """The provider account the flags describe: None for the default platform."""
    from kaipiao.services import providers

    if platform not in providers.PLATFORMS:
        fail(f"--platform must be one of {', '.join(providers.PLATFORMS)}", 2)
    if platform == "nuonuo":
        if not (app_key and app_secret and access_token):
            fail("--platform nuonuo needs --app-key, --app-secret and --access-token", 2)
        return providers.NuonuoCredentials(app_key, app_secret, access_token, tax_num)
    if app_key or app_secret or access_token or tax_num:
        fail("--app-key, --app-secret, --access-token and --nuonuo-tax-num need --platform nuonuo",
             2)  # fmt: skip
    return None


@seller_app.command("add")
def seller_add(
    name: Annotated[str, typer.Option(help="Seller's registered name.")],
    tax_id: Annotated[str, typer.Option(help="Seller's unified social credit code.")],
    region: Annotated[str, typer.Option(help="2-digit province code (31 Shanghai…).")] = "31",
    quota: Annotated[
        float | None, typer.Option(help="Platform calls/s allowed for this seller.")
    ] = None,
    invoice_limit: Annotated[
        str | None,
        typer.Option(
            help="Per-invoice limit (单张开票限额) on the total excluding tax; an order over it "
            "is split into several invoices (none by default)."
        ),
    ] = None,
    limit_includes_tax: Annotated[
        bool, typer.Option(help="--invoice-limit is on the total including tax instead.")
    ] = False,
    max_lines: Annotated[
        int | None,
        typer.Option(
            help="Most lines on one invoice, discount lines included (default 2000); "
            "an order over it is split."
        ),
    ] = None,
    tax_id_check: Annotated[
        CheckMode, typer.Option(help="Buyer credit-code checksum failures: reject or warn.")
    ] = CheckMode.REJECT,
    allow_network: Annotated[
        list[str] | None, typer.Option(help="CIDR allowed to call with this key (repeatable).")
    ] = None,
    platform: Annotated[
        str, typer.Option(help="default (the deployment's platform) or nuonuo (its own account).")
    ] = "default",
    app_key: Annotated[str | None, typer.Option(help="Nuonuo app key.")] = None,
    app_secret: Annotated[
        str | None,
        typer.Option(
            help="Nuonuo app secret: env:NAME to read it from the environment, "
            "else stored encrypted."
        ),
    ] = None,
    access_token: Annotated[
        str | None, typer.Option(help="Nuonuo access token: env:NAME, else stored encrypted.")
    ] = None,
    nuonuo_tax_num: Annotated[
        str | None, typer.Option(help="Nuonuo userTax (default: the seller's tax id).")
    ] = None,
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a seller and print its API key and webhook signing secret (shown once; only a
    hash of the key is stored).

    With --platform nuonuo the seller issues through its own Nuonuo account; its app secret and
    token are stored encrypted with the deployment's secrets key, or as env:NAME references."""
    from kaipiao.bootstrap import provider_account
    from kaipiao.clock import utcnow
    from kaipiao.services import sellers
    from kaipiao.store.database import Database

    limit = _decimal("--invoice-limit", invoice_limit)
    settings = settings_from(data_dir=data_dir, database_url=database_url)
    credentials = _credentials(platform, app_key, app_secret, access_token, nuonuo_tax_num)
    account = provider_account(settings, tax_id, credentials)

    async def add(db: Database) -> sellers.NewSeller:
        return await sellers.add_seller(
            db, name=name, tax_id=tax_id, now=utcnow(), region=region, quota_per_s=quota,
            invoice_limit=limit, tax_id_check=tax_id_check,
            allowed_networks=tuple(allow_network or ()), platform=account,
            max_lines=max_lines, limit_includes_tax=limit_includes_tax,
        )  # fmt: skip

    created = run_db(settings, add, migrate=True)
    if as_json:
        typer.echo(json.dumps({"seller_id": created.seller.id, "api_key": created.api_key,
                               "webhook_secret": created.seller.webhook_secret}))  # fmt: skip
    else:
        typer.echo(f"seller {created.seller.id} ({created.seller.name}, {tax_id})")
        typer.echo(f"API key (shown once, store it now): {created.api_key}")
        typer.echo(f"webhook signing secret (shown once): {created.seller.webhook_secret}")


@seller_app.command("list")
def seller_list(
    as_json: AsJson = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List registered sellers."""
    from kaipiao.domain.sellers import Seller
    from kaipiao.services import sellers
    from kaipiao.store.database import Database

    async def read(db: Database) -> tuple[list[Seller], dict[str, str]]:
        return await sellers.list_sellers(db), await sellers.platforms(db)

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    rows, platforms = run_db(settings, read)
    if as_json:
        typer.echo(json.dumps([
            {"seller_id": s.id, "name": s.name, "tax_id": s.tax_id, "region": s.region,
             "quota_per_s": s.quota_per_s, "platform": platforms.get(s.id, "default"),
             "invoice_limit": str(s.invoice_limit) if s.invoice_limit is not None else None,
             "limit_includes_tax": s.limit_includes_tax, "max_lines": s.max_lines}
            for s in rows
        ], ensure_ascii=False))  # fmt: skip
        return
    if not rows:
        typer.echo("no sellers; add one with `kaipiao seller add`")
    for s in rows:
        limit = s.invoice_limit if s.invoice_limit is not None else "-"
        where = platforms.get(s.id, "default")
        typer.echo(f"{s.id}  {s.tax_id}  region {s.region}  quota {s.quota_per_s or '-'}/s  "
                   f"limit {limit}  platform {where}  {s.name}")  # fmt: skip


@seller_app.command("demo-key")
def seller_demo_key(data_dir: DataDir = None) -> None:
    """Print the demo seller's API key that `kaipiao serve` created in the data directory."""
    from kaipiao.services.demo import read_demo_seller

    settings = settings_from(data_dir=data_dir)
    demo = read_demo_seller(settings.data_dir)
    if demo is None:
        fail(f"no demo seller in {settings.data_dir}: start `kaipiao serve` once")
    typer.echo(demo.api_key)


def operator_key(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Create an operator (admin) API key for GET /v1/ops/status; printed once."""
    from kaipiao.clock import utcnow
    from kaipiao.services import sellers

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    typer.echo(run_db(settings, lambda db: sellers.add_admin_key(db, now=utcnow()), migrate=True))
