"""The tamper-evident record and its life cycle: `ledger verify | checkpoint | public-key |
check-proof | check-consistency`, `archive`, `archive verify` and `purge`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kaipiao.cli.shared import DatabaseUrl, DataDir, fail, run_db, settings_from
from kaipiao.config import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ledger_app = typer.Typer(
    help="The tamper-evident ledger: verify it, sign checkpoints, check proofs offline.",
    no_args_is_help=True,
)
archive_app = typer.Typer(
    help="Archive finished invoices and their ledger events (signed), or verify an archive.",
    invoke_without_command=True,
)

PublicKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="The ledger's public key (PEM); default: derived from the key in the data directory.",
    ),
]


def _public_key(settings: Settings, path: Path | None) -> Ed25519PublicKey:
    """The key that --public-key names, or the one of the data directory's signing key."""
    from kaipiao.bootstrap import has_ledger_key, signer_for
    from kaipiao.ledger.signing import load_public

    if path is not None:
        try:
            return load_public(path.read_bytes())
        except (OSError, ValueError) as exc:
            fail(f"cannot read the public key {path}: {exc}", 2)
    if not has_ledger_key(settings):
        fail(f"no ledger key at {settings.ledger_key_path()}; pass --public-key", 2)
    return signer_for(settings).public


def _utc(flag: str, text: str, what: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{flag} {text!r} is not {what}", 2)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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
    """Walk the whole chain and every checkpoint, and check every stored invoice file against
    its ledger hash; exit 1 naming the first bad event and every changed file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from kaipiao.bootstrap import file_store_for
    from kaipiao.services import files, verification

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    public = _public_key(settings, public_key)
    heads = verification.read_published(published or settings.ledger_published_path())
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("verifying events", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        started = time.monotonic()
        verdict = run_db(
            settings,
            lambda db: verification.verify(db, public, published=heads, progress=progress),
        )
        elapsed = max(time.monotonic() - started, 1e-6)
    checked, bad_files = run_db(
        settings, lambda db: files.check_files(db, file_store_for(settings))
    )
    if not verdict.ok:
        typer.echo(f"ledger BROKEN at event {verdict.bad_seq}: {verdict.problem}", err=True)
        for note in verdict.notes:  # a restore's rollback is said even when something else broke
            typer.echo(f"  note: {note}", err=True)
    for problem in bad_files:
        typer.echo(f"invoice files BROKEN: {problem}", err=True)
    if not verdict.ok or bad_files:
        raise typer.Exit(1)
    typer.echo(
        f"ledger OK: {verdict.events} events, {verdict.checkpoints} signed checkpoints, "
        f"{verdict.published} published heads match ({elapsed:.1f} s"
        # A rate over a short run would mostly measure start-up: only past a second.
        + (f", {verdict.events / elapsed:,.0f} events/s)" if elapsed >= 1 else ")")
    )
    typer.echo(f"invoice files OK: {checked} stored files match their ledger hashes")
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
    made = run_db(
        settings,
        lambda db: ledger.make_checkpoint(
            db,
            signer,
            now=utcnow(),
            published=settings.ledger_published_path() if settings.ledger_publish else None,
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
    from kaipiao.bootstrap import file_store_for, signer_for
    from kaipiao.clock import utcnow
    from kaipiao.services import archive as service

    if before is None or out is None:
        fail(
            "kaipiao archive needs --before DATE and --out DIR (or: kaipiao archive verify DIR)", 2
        )
    cutoff = _utc("--before", before, "an ISO 8601 date or time")
    settings = settings_from(data_dir=data_dir, database_url=database_url)
    signer = signer_for(settings)
    written = run_db(
        settings,
        lambda db: service.write_archive(
            db, signer, before=cutoff, out=out, now=utcnow(), files=file_store_for(settings)
        ),
    )
    typer.echo(f"archived {written.invoices} invoices and {written.events} events to "
               f"{written.out} (Merkle root {written.root}, key {signer.key_id})")  # fmt: skip


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
    from kaipiao.services.retention import purge as run_purge

    settings = settings_from(data_dir=data_dir, database_url=database_url,
                             retention_years=retention_years)  # fmt: skip
    public = _public_key(settings, public_key)
    years = settings.retention_years
    result = run_db(
        settings,
        lambda db: run_purge(
            db, archive_dir, public, now=utcnow(), retention_years=years, dry_run=dry_run
        ),
    )
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
