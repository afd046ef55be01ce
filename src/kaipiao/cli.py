"""The `kaipiao` command: each subcommand parses flags, builds Settings, calls one service."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from kaipiao import __version__
from kaipiao.config import Settings
from kaipiao.domain.credit_code import CheckMode
from kaipiao.sandbox.faults import PROFILES

app = typer.Typer(
    name="kaipiao",
    help="kaipiao: a self-hosted e-invoice (fapiao) issuing gateway.",
    no_args_is_help=True,
    add_completion=False,
)
seller_app = typer.Typer(help="Register and list sellers.", no_args_is_help=True)
app.add_typer(seller_app, name="seller")
invoices_app = typer.Typer(
    help="Look at invoices and requeue those that need an operator.", no_args_is_help=True
)
app.add_typer(invoices_app, name="invoices")
ledger_app = typer.Typer(
    help="The tamper-evident ledger: verify it, sign checkpoints, check proofs offline.",
    no_args_is_help=True,
)
app.add_typer(ledger_app, name="ledger")
archive_app = typer.Typer(
    help="Archive finished invoices and their ledger events (signed), or verify an archive.",
    invoke_without_command=True,
)
app.add_typer(archive_app, name="archive")

DataDir = Annotated[
    Path | None,
    typer.Option(help="Data directory (SQLite store, sandbox state). [env: KAIPIAO_DATA_DIR]"),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="postgresql://… or sqlite:///PATH. [env: KAIPIAO_DATABASE_URL]"),
]


def settings_from(**flags: Any) -> Settings:
    """Settings from KAIPIAO_* variables, overridden by the flags given on the command line."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"])
            typer.echo(f"error: {name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.callback()
def _root() -> None:
    """kaipiao: a self-hosted e-invoice (fapiao) issuing gateway."""


@app.command()
def version() -> None:
    """Print kaipiao's version."""
    typer.echo(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (0: any free port).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    platform_url: Annotated[
        str | None,
        typer.Option(help="Tax platform URL; default: a sandbox in this process."),
    ] = None,
    demo_seller: Annotated[
        bool | None, typer.Option(help="Create a demo seller on first start.")
    ] = None,
    workers: Annotated[
        bool | None,
        typer.Option(help="Run issuing workers in this process (--no-workers: API only)."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
) -> None:
    """Run the gateway: the HTTP API and issuing workers, on an embedded SQLite store by default."""
    from kaipiao.bootstrap import configure_logging
    from kaipiao.bootstrap import serve as run

    settings = settings_from(
        host=host, port=port, data_dir=data_dir, database_url=database_url,
        platform_url=platform_url, demo_seller=demo_seller, log_level=log_level, workers=workers,
    )  # fmt: skip
    configure_logging(settings.log_level)
    _install_loop()
    asyncio.run(run(settings))


@app.command()
def worker(
    platform_url: Annotated[
        str | None, typer.Option(help="Tax platform URL. [env: KAIPIAO_PLATFORM_URL]")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    lease_s: Annotated[
        float | None, typer.Option(help="Lease per claimed invoice, seconds.")
    ] = None,
    max_in_flight: Annotated[
        int | None, typer.Option(help="Platform calls in flight at most.")
    ] = None,
    settle_s: Annotated[
        float | None,
        typer.Option(help="Platform's longest processing time; a not-found is trusted after it."),
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve Prometheus /metrics on this port (0: any free one).")
    ] = None,
) -> None:
    """Run an issuing worker (no HTTP API): claims due invoices and issues them."""
    from kaipiao.bootstrap import configure_logging, run_worker

    settings = settings_from(
        platform_url=platform_url, data_dir=data_dir, database_url=database_url, lease_s=lease_s,
        max_in_flight=max_in_flight, log_level=log_level, settle_s=settle_s,
        metrics_port=metrics_port,
    )  # fmt: skip
    if settings.platform_url is None:
        fail("kaipiao worker needs --platform-url (or KAIPIAO_PLATFORM_URL)", 2)
    configure_logging(settings.log_level)
    _install_loop()
    asyncio.run(run_worker(settings))


@app.command()
def migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply database migrations (safe to run again)."""
    from kaipiao.bootstrap import database_for
    from kaipiao.store.migrate import current_revision, upgrade

    settings = settings_from(data_dir=data_dir, database_url=database_url)

    async def run() -> str | None:
        db = database_for(settings)
        try:
            await upgrade(db)
            return await current_revision(db)
        finally:
            await db.dispose()

    typer.echo(f"database at revision {asyncio.run(run())}")


@seller_app.command("add")
def seller_add(
    name: Annotated[str, typer.Option(help="Seller's registered name.")],
    tax_id: Annotated[str, typer.Option(help="Seller's unified social credit code.")],
    region: Annotated[str, typer.Option(help="2-digit province code (31 Shanghai…).")] = "31",
    quota: Annotated[
        float | None, typer.Option(help="Platform calls/s allowed for this seller.")
    ] = None,
    invoice_limit: Annotated[
        str | None, typer.Option(help="Largest invoice total allowed (none by default).")
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
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a seller and print its API key (shown once; only a hash is stored).

    With --platform nuonuo the seller issues through its own Nuonuo account; its app secret and
    token are stored encrypted with the deployment's secrets key, or as env:NAME references."""
    from kaipiao.bootstrap import database_for
    from kaipiao.clock import utcnow
    from kaipiao.services import providers, sellers
    from kaipiao.services.errors import ServiceError
    from kaipiao.services.secrets import SecretBox
    from kaipiao.store.migrate import upgrade

    limit: Decimal | None = None
    if invoice_limit is not None:
        try:
            limit = Decimal(invoice_limit)
        except InvalidOperation:
            fail(f"--invoice-limit {invoice_limit!r} is not a decimal amount", 2)
    settings = settings_from(data_dir=data_dir, database_url=database_url)
    account: tuple[str, dict[str, str]] | None = None
    if platform not in providers.PLATFORMS:
        fail(f"--platform must be one of {', '.join(providers.PLATFORMS)}", 2)
    if platform == "nuonuo":
        if not (app_key and app_secret and access_token):
            fail("--platform nuonuo needs --app-key, --app-secret and --access-token", 2)
            return
        box = SecretBox.load_or_create(settings.secrets_key_path())
        credentials = providers.NuonuoCredentials(app_key, app_secret, access_token,
                                                  nuonuo_tax_num)  # fmt: skip
        try:
            account = ("nuonuo", providers.nuonuo_settings(credentials, tax_id, box))
        except ServiceError as exc:
            fail(f"{exc.message} ({exc.code})", 2)
    elif app_key or app_secret or access_token or nuonuo_tax_num:
        fail("--app-key, --app-secret, --access-token and --nuonuo-tax-num need --platform nuonuo",
             2)  # fmt: skip

    async def run() -> sellers.NewSeller:
        db = database_for(settings)
        try:
            await upgrade(db)
            return await sellers.add_seller(
                db, name=name, tax_id=tax_id, now=utcnow(), region=region, quota_per_s=quota,
                invoice_limit=limit, tax_id_check=tax_id_check,
                allowed_networks=tuple(allow_network or ()), platform=account,
            )  # fmt: skip
        finally:
            await db.dispose()

    try:
        created = asyncio.run(run())
    except ServiceError as exc:
        fail(f"{exc.message} ({exc.code})")
        return
    if as_json:
        typer.echo(json.dumps({"seller_id": created.seller.id, "api_key": created.api_key}))
    else:
        typer.echo(f"seller {created.seller.id} ({created.seller.name}, {tax_id})")
        typer.echo(f"API key (shown once, store it now): {created.api_key}")


@seller_app.command("list")
def seller_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List registered sellers."""
    from kaipiao.bootstrap import database_for
    from kaipiao.services import sellers

    settings = settings_from(data_dir=data_dir, database_url=database_url)

    async def run() -> tuple[list[Any], dict[str, str]]:
        db = database_for(settings)
        try:
            return await sellers.list_sellers(db), await sellers.platforms(db)
        finally:
            await db.dispose()

    rows, platforms = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps([
            {"seller_id": s.id, "name": s.name, "tax_id": s.tax_id, "region": s.region,
             "quota_per_s": s.quota_per_s, "platform": platforms.get(s.id, "default"),
             "invoice_limit": str(s.invoice_limit) if s.invoice_limit is not None else None}
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


def _invoice_line(i: Any) -> str:
    number = i.invoice_number or "-"
    error = f"  {i.error_code}" if i.error_code else ""
    return (f"{i.id}  {i.status.value:<9} {i.kind.value:<4} {i.order_id:<20} {i.total:>12}  "
            f"#{number}  attempts {i.attempts}{error}")  # fmt: skip


def _run_db(settings: Settings, work: Any) -> Any:
    from kaipiao.bootstrap import database_for

    async def run() -> Any:
        db = database_for(settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@invoices_app.command("list")
def invoices_list(
    status: Annotated[str | None, typer.Option(help="Only this status (e.g. attention).")] = None,
    seller: Annotated[str | None, typer.Option(help="Only this seller id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List invoices, newest first."""
    from kaipiao.domain.lifecycle import Status
    from kaipiao.services import operations
    from kaipiao.store.documents import render_invoice

    try:
        wanted = Status(status) if status else None
    except ValueError:
        fail(f"unknown status {status!r}; one of {', '.join(s.value for s in Status)}", 2)
        return
    settings = settings_from(data_dir=data_dir, database_url=database_url)
    rows = _run_db(
        settings, lambda db: operations.list_all(db, status=wanted, seller_id=seller, limit=limit)
    )
    if as_json:
        typer.echo(json.dumps([render_invoice(i) for i in rows], ensure_ascii=False))
        return
    for row in rows:
        typer.echo(_invoice_line(row))
    if not rows:
        typer.echo("no invoices")


@invoices_app.command("show")
def invoices_show(
    invoice_id: Annotated[str, typer.Argument(help="Invoice id (inv_…).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show one invoice and its ledger events."""
    from kaipiao.services import operations
    from kaipiao.services.errors import ServiceError
    from kaipiao.store.documents import render_invoice

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    try:
        invoice, events = _run_db(settings, lambda db: operations.show(db, invoice_id))
    except ServiceError as exc:
        fail(exc.message)
        return
    typer.echo(json.dumps(render_invoice(invoice), ensure_ascii=False, indent=2))
    for event in events:
        typer.echo(f"  {event['created_at']}  {event['type']:<16} {event['payload']}")


@invoices_app.command("requeue")
def invoices_requeue(
    invoice_ids: Annotated[list[str], typer.Argument(help="Invoice ids in attention.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Give attention invoices new attempts (each is queried on the platform before resending)."""
    from kaipiao.clock import utcnow
    from kaipiao.services import operations
    from kaipiao.services.errors import ServiceError

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    failed = False
    for invoice_id in invoice_ids:
        try:
            invoice = _run_db(
                settings, lambda db, i=invoice_id: operations.requeue(db, i, now=utcnow())
            )
            typer.echo(f"{invoice.id} requeued ({invoice.status.value})")
        except ServiceError as exc:
            typer.echo(f"{invoice_id}: {exc.message}", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)


PublicKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="The ledger's public key (PEM); default: derived from the key in the data directory.",
    ),
]


def _public_key(settings: Settings, path: Path | None) -> Any:
    from kaipiao.ledger.signing import Signer, load_public

    if path is not None:
        try:
            return load_public(path.read_bytes())
        except (OSError, ValueError) as exc:
            fail(f"cannot read the public key {path}: {exc}", 2)
    key = settings.ledger_key_path()
    if not key.exists():
        fail(f"no ledger key at {key}; pass --public-key", 2)
    return Signer.load_or_create(key).public


@ledger_app.command("verify")
def ledger_verify(
    public_key: PublicKeyFile = None,
    published: Annotated[
        Path | None,
        typer.Option(
            help="Signed heads published outside the database (JSON lines); default: "
            "the data directory's ledger-checkpoints.jsonl if it exists."
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Walk the whole chain and every checkpoint; exit 1 naming the first bad event."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from kaipiao.services import ledger

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    public = _public_key(settings, public_key)
    heads = ledger.read_published(published or settings.ledger_published_path())
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("verifying events", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        started = time.monotonic()
        verdict = _run_db(
            settings,
            lambda db: ledger.verify(db, public, published=heads, progress=progress),
        )
        elapsed = max(time.monotonic() - started, 1e-6)
    if not verdict.ok:
        typer.echo(f"ledger BROKEN at event {verdict.bad_seq}: {verdict.problem}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"ledger OK: {verdict.events} events, {verdict.checkpoints} signed checkpoints, "
        f"{verdict.published} published heads match ({elapsed:.1f} s"
        # A rate over a short run would mostly measure start-up: only past a second.
        + (f", {verdict.events / elapsed:,.0f} events/s)" if elapsed >= 1 else ")")
    )
    for note in verdict.notes:
        typer.echo(f"  note: {note}")


@ledger_app.command("checkpoint")
def ledger_checkpoint(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Sign a checkpoint over every event so far (serve does this every minute)."""
    from kaipiao.bootstrap import signer_for
    from kaipiao.clock import utcnow
    from kaipiao.services import ledger

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    signer = signer_for(settings)
    made = _run_db(
        settings,
        lambda db: ledger.make_checkpoint(
            db, signer, now=utcnow(), published=settings.ledger_published_path()
        ),
    )
    if made is None:
        typer.echo("nothing new to sign")
    else:
        typer.echo(f"checkpoint: {made.size} events, root {made.root}, key {made.key_id}")


@ledger_app.command("public-key")
def ledger_public_key(data_dir: DataDir = None) -> None:
    """Print the public key that verifies checkpoints and proofs (PEM)."""
    from kaipiao.bootstrap import signer_for
    from kaipiao.ledger.signing import public_pem

    typer.echo(public_pem(signer_for(settings_from(data_dir=data_dir)).public), nl=False)


def _check_document(file: Path, public_key: Path, kind: str) -> None:
    from kaipiao.ledger import proof
    from kaipiao.ledger.signing import load_public

    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        public = load_public(public_key.read_bytes())
    except (OSError, ValueError) as exc:
        fail(f"cannot read: {exc}", 2)
        return
    check = proof.check_inclusion if kind == "inclusion" else proof.check_consistency
    problems = check(doc, public)
    if problems:
        for problem in problems:
            typer.echo(f"FAILED: {problem}", err=True)
        raise typer.Exit(1)
    if kind == "inclusion":
        typer.echo(f"proof OK: {len(doc['events'])} events of {doc['invoice_id']} are in the "
                   f"signed tree of {doc['checkpoint']['size']} events")  # fmt: skip
    else:
        typer.echo(f"consistency OK: {doc['first']['size']} → {doc['second']['size']} events")


@ledger_app.command("check-proof")
def ledger_check_proof(
    file: Annotated[Path, typer.Argument(help="A proof from GET /v1/invoices/{id}/proof.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The ledger's public key.")],
) -> None:
    """Verify an invoice's proof offline, with nothing but the proof and the public key."""
    _check_document(file, public_key, "inclusion")


@ledger_app.command("check-consistency")
def ledger_check_consistency(
    file: Annotated[Path, typer.Argument(help="A proof from GET /v1/ledger/consistency.")],
    public_key: Annotated[Path, typer.Option("--public-key", help="The ledger's public key.")],
) -> None:
    """Verify offline that one signed checkpoint's tree is a prefix of another's."""
    _check_document(file, public_key, "consistency")


@archive_app.callback()
def archive(
    ctx: typer.Context,
    before: Annotated[
        str | None, typer.Option(help="Archive invoices accepted before this UTC date/time.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="A new directory for the archive.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """`kaipiao archive --before DATE --out DIR` writes an archive; nothing is deleted."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime

    from kaipiao.bootstrap import signer_for
    from kaipiao.clock import utcnow
    from kaipiao.services import archive as service
    from kaipiao.services.errors import ServiceError

    if before is None or out is None:
        fail(
            "kaipiao archive needs --before DATE and --out DIR (or: kaipiao archive verify DIR)", 2
        )
        return
    try:
        cutoff = datetime.fromisoformat(before)
    except ValueError:
        fail(f"--before {before!r} is not an ISO 8601 date or time", 2)
        return
    cutoff = cutoff.replace(tzinfo=UTC) if cutoff.tzinfo is None else cutoff.astimezone(UTC)
    settings = settings_from(data_dir=data_dir, database_url=database_url)
    signer = signer_for(settings)
    try:
        written = _run_db(
            settings,
            lambda db: service.write_archive(db, signer, before=cutoff, out=out, now=utcnow()),
        )
    except ServiceError as exc:
        fail(exc.message)
        return
    typer.echo(f"archived {written.invoices} invoices and {written.events} events to "
               f"{written.out} (Merkle root {written.root}, key {signer.key_id})")  # fmt: skip


@app.command()
def purge(
    archive_dir: Annotated[
        Path, typer.Option("--archive", help="A verified archive (`kaipiao archive`) to purge.")
    ],
    dry_run: Annotated[bool, typer.Option(help="Count what would go; delete nothing.")] = False,
    retention_years: Annotated[
        int | None, typer.Option(help="Years kept (default 10; at least 6).")
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option(help="Ledger public key (default: the data directory's).")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove archived, finished invoices older than the retention period; leaves a ledger event."""
    from kaipiao.clock import utcnow
    from kaipiao.services.errors import ServiceError
    from kaipiao.services.retention import purge as run_purge

    settings = settings_from(data_dir=data_dir, database_url=database_url,
                             retention_years=retention_years)  # fmt: skip
    public = _public_key(settings, public_key)

    async def run(db: Any) -> Any:
        years = settings.retention_years
        return await run_purge(
            db, archive_dir, public, now=utcnow(), retention_years=years, dry_run=dry_run
        )

    try:
        result = _run_db(settings, run)
    except ServiceError as exc:
        fail(f"{exc.message} ({exc.code})")
        return
    verb = "would purge" if dry_run else "purged"
    typer.echo(
        f"{verb} {result.purged} of {result.archived} archived invoices accepted before "
        f"{result.cutoff.date()} ({settings.retention_years} years); kept: {result.too_recent} too "
        f"recent, {result.changed} changed since archived, {result.still_referenced} with a red "
        f"invoice still kept"
    )
    if not dry_run and result.purged:
        typer.echo(f"  expired idempotency keys removed: {result.expired_keys}; "
                   "a `purged` event is in the ledger")  # fmt: skip


@archive_app.command("verify")
def archive_verify(
    directory: Annotated[Path, typer.Argument(help="An archive directory.")],
    public_key: PublicKeyFile = None,
    data_dir: DataDir = None,
) -> None:
    """Check an archive offline: signature, files, counts, every event's hash, the root."""
    from kaipiao.services import archive as service

    settings = settings_from(data_dir=data_dir)
    problems = service.verify_archive(directory, _public_key(settings, public_key))
    if problems:
        for problem in problems:
            typer.echo(f"FAILED: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"archive OK: {directory}")


@app.command()
def reconcile(
    since: Annotated[
        str | None,
        typer.Option(
            help="Compare what changed since this UTC time (ISO 8601); default: 24 h ago."
        ),
    ] = None,
    platform_url: Annotated[
        str | None, typer.Option(help="Tax platform URL. [env: KAIPIAO_PLATFORM_URL]")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Compare local state with the platform's listing; exit 1 if anything contradicts."""
    from datetime import UTC, datetime, timedelta

    from kaipiao.bootstrap import platform_for
    from kaipiao.clock import utcnow
    from kaipiao.services import reconcile as service

    settings = settings_from(
        platform_url=platform_url, data_dir=data_dir, database_url=database_url
    )
    if settings.platform_url is None:
        fail("kaipiao reconcile needs --platform-url (or KAIPIAO_PLATFORM_URL)", 2)
        return
    try:
        start = datetime.fromisoformat(since) if since else utcnow() - timedelta(hours=24)
    except ValueError:
        fail(f"--since {since!r} is not an ISO 8601 time", 2)
        return
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    url = settings.platform_url

    async def run(db: Any) -> Any:
        platform = platform_for(settings, url, db)
        try:
            return await service.reconcile(db, platform, since=start, clock=utcnow)
        finally:
            await platform.aclose()

    report = _run_db(settings, run)
    typer.echo(f"checked {report.checked}, settled {report.settled}, "
               f"contradictions {len(report.contradictions)} "
               f"(deviation {report.deviation:.4%})")  # fmt: skip
    for line in report.contradictions:
        typer.echo(f"  contradiction: {line}")
    for seller_id in report.unreachable:
        typer.echo(f"  platform unreachable for seller {seller_id}", err=True)
    if report.contradictions or report.unreachable:
        raise typer.Exit(1)


@app.command("operator-key")
def operator_key(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Create an operator (admin) API key for GET /v1/ops/status; printed once."""
    from kaipiao.clock import utcnow
    from kaipiao.services import sellers
    from kaipiao.store.migrate import upgrade

    async def create(db: Any) -> str:
        await upgrade(db)
        return await sellers.add_admin_key(db, now=utcnow())

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    typer.echo(_run_db(settings, create))


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The queue, every worker's breakers and limits, and the incident level."""
    from kaipiao.clock import utcnow
    from kaipiao.services import status as service

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    snap = _run_db(settings, lambda db: service.snapshot(db, utcnow()))
    if as_json:
        typer.echo(json.dumps(snap.to_json(), ensure_ascii=False))
        return
    for line in service.render(snap):
        typer.echo(line)


@seller_app.command("demo-key")
def seller_demo_key(data_dir: DataDir = None) -> None:
    """Print the demo seller's API key that `kaipiao serve` created in the data directory."""
    from kaipiao.bootstrap import read_demo_seller

    settings = settings_from(data_dir=data_dir)
    demo = read_demo_seller(settings.data_dir)
    if demo is None:
        fail(f"no demo seller in {settings.data_dir}: start `kaipiao serve` once")
        return
    typer.echo(demo.api_key)


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one and prints it).")] = 8700,
    profile: Annotated[str, typer.Option(help=f"Fault profile: {', '.join(PROFILES)}.")] = "normal",
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    state: Annotated[
        Path | None, typer.Option(help="Keep what was issued in this file across restarts.")
    ] = None,
    nuonuo_app: Annotated[
        list[str] | None,
        typer.Option(help="KEY:SECRET of an app the Nuonuo front accepts (repeatable)."),
    ] = None,
) -> None:
    """Run the sandbox tax platform (a real HTTP server with fault profiles).

    Speaks kaipiao's sandbox protocol under /v1 and Nuonuo's open API at /open/v1/services."""
    if profile not in PROFILES:
        raise typer.BadParameter(
            f"unknown profile; known: {', '.join(PROFILES)}", param_hint="--profile"
        )
    apps: dict[str, str] = {}
    for item in nuonuo_app or []:
        key, sep, secret = item.partition(":")
        if not sep or not key or not secret:
            raise typer.BadParameter("give KEY:SECRET", param_hint="--nuonuo-app")
        apps[key] = secret
    from kaipiao.sandbox.run import serve_sandbox

    _install_loop()
    asyncio.run(serve_sandbox(host, port, profile, seed, state, apps))


@app.command()
def plan(
    invoices_per_day: Annotated[int, typer.Option(help="Invoices a day on average.")],
    peak_factor: Annotated[float, typer.Option(help="Peak rate ÷ average rate.")] = 10.0,
    latency_mean: Annotated[float, typer.Option(help="Platform latency, mean, seconds.")] = 0.8,
    latency_p99: Annotated[float, typer.Option(help="Platform latency, p99, seconds.")] = 5.0,
    quota: Annotated[float, typer.Option(help="Platform calls/s allowed, all sellers.")] = 300.0,
    payload_bytes: Annotated[int, typer.Option(help="Size of one invoice request.")] = 2048,
    retention_years: Annotated[int, typer.Option(help="Years invoices are kept.")] = 10,
    replicas: Annotated[int, typer.Option(help="Processes of each kind, at least.")] = 2,
    failure_rate: Annotated[float, typer.Option(help="Share of platform calls failing.")] = 0.005,
    disk_iops: Annotated[int, typer.Option(help="Write IOPS the database disk sustains.")] = 3000,
    concurrent_users: Annotated[
        int | None, typer.Option(help="Callers at once, for the field's pool rule.")
    ] = None,
) -> None:
    """Capacity planner: what a deployment needs at its peak, with the reasoning shown."""
    from kaipiao.ops.plan import PlanInput, render
    from kaipiao.ops.plan import plan as work_out

    try:
        forecast = PlanInput(
            invoices_per_day=invoices_per_day, peak_factor=peak_factor,
            latency_mean_s=latency_mean, latency_p99_s=latency_p99, quota_per_s=quota,
            payload_bytes=payload_bytes, retention_years=retention_years, replicas=replicas,
            failure_rate=failure_rate, disk_iops=disk_iops, concurrent_users=concurrent_users,
        )  # fmt: skip
    except ValueError as exc:
        fail(str(exc), 2)
        return
    typer.echo(render(forecast, work_out(forecast)))


@app.command()
def bench(
    url: Annotated[str, typer.Argument(help="A kaipiao base URL, e.g. http://127.0.0.1:8000.")],
    api_key: Annotated[
        list[str], typer.Option(help="Seller API key (repeatable: requests alternate).")
    ],
    rate: Annotated[
        float | None, typer.Option(help="Open loop: requests/s, answered or not.")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Closed loop: requests kept outstanding.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 30.0,
    timeout: Annotated[float, typer.Option(help="A caller's timeout, seconds.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Load a kaipiao URL with invoice requests; print throughput and latency percentiles."""
    from kaipiao.ops.bench import run_bench

    if (rate is None) == (concurrency is None):
        fail("give exactly one of --rate (open loop) or --concurrency (closed loop)", 2)
    if duration <= 0 or (rate is not None and rate <= 0) or (concurrency or 1) < 1:
        fail("--duration and --rate must be positive, --concurrency at least 1", 2)
    code = run_bench(url.rstrip("/"), api_key, rate, concurrency, duration, timeout, as_json)
    raise typer.Exit(code)


@app.command()
def drill(
    scenario: Annotated[str, typer.Argument(help="Scenario name; see `kaipiao drill --help`.")],
    duration: Annotated[float, typer.Option(help="Seconds of load (the fault is 30–60%).")] = 60,
    rate: Annotated[float, typer.Option(help="Base arrivals, invoices/s.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Seed of the platform's random draws.")] = 1,
    database_url: Annotated[
        str | None, typer.Option(help="postgresql://… to drill on PostgreSQL (default SQLite).")
    ] = None,
    compare: Annotated[
        bool, typer.Option(help="Run the naive synchronous gateway too, side by side.")
    ] = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report here.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the measured figures as JSON here.")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep logs and the SQLite store here (default: temp).")
    ] = None,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the backlog after the load.")
    ] = 120.0,
    restart_command: Annotated[
        str | None, typer.Option(help="db-restart on PostgreSQL: the command that restarts it.")
    ] = None,
) -> None:
    """Replay a field incident with real processes and check the invariants.

    Scenarios: surge, slow-platform, failure-spike, outage, ambiguous, worker-crash, db-restart,
    region-outage. Exit status 1 if any invariant breaks."""
    from kaipiao.ops.drill_cli import run_drill_command
    from kaipiao.ops.scenarios import SCENARIOS

    if scenario not in SCENARIOS:
        fail(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}", 2)
    if duration < 10 or rate <= 0 or drain_timeout < 0:
        fail("--duration must be at least 10 s, --rate positive, --drain-timeout ≥ 0", 2)
    url = None
    if database_url is not None:
        url = settings_from(database_url=database_url).database_url
    ok = run_drill_command(
        SCENARIOS[scenario], duration=duration, rate=rate, seed=seed, database_url=url,
        compare=compare, html=html, json_out=json_out, work_dir=work_dir,
        drain_timeout=drain_timeout, restart_command=restart_command,
    )  # fmt: skip
    raise typer.Exit(0 if ok else 1)


def _install_loop() -> None:
    from kaipiao.sandbox.run import install_event_loop

    install_event_loop()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
