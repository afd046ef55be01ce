"""Operators' look at invoices: `invoices list | show | requeue`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from kaipiao.cli.shared import AsJson, DatabaseUrl, DataDir, explain, fail, run_db, settings_from
from kaipiao.domain.errors import DomainError
from kaipiao.services.errors import ServiceError

if TYPE_CHECKING:
    from kaipiao.store.records import StoredInvoice

invoices_app = typer.Typer(
    help="Look at invoices and requeue those that need an operator.", no_args_is_help=True
)


def _invoice_line(i: StoredInvoice) -> str:
    number = i.invoice_number or "-"
    error = f"  {i.error_code}" if i.error_code else ""
    return (f"{i.id}  {i.status.value:<9} {i.kind.value:<4} {i.order_id:<20} {i.total:>12}  "
            f"#{number}  attempts {i.attempts}{error}")  # fmt: skip


@invoices_app.command("list")
def invoices_list(
    status: Annotated[str | None, typer.Option(help="Only this status (e.g. attention).")] = None,
    seller: Annotated[str | None, typer.Option(help="Only this seller id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: AsJson = False,
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
    settings = settings_from(data_dir=data_dir, database_url=database_url)
    rows = run_db(
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
    from kaipiao.store.documents import render_invoice

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    invoice, events = run_db(settings, lambda db: operations.show(db, invoice_id))
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
    from kaipiao.store.database import Database

    async def requeue_each(db: Database) -> list[str]:
        # The ids are independent requests: one that is refused is reported in the one handler's
        # words and the others still go. A store that is down stops them all (the root handler).
        refused = []
        for invoice_id in invoice_ids:
            try:
                invoice = await operations.requeue(db, invoice_id, now=utcnow())
            except (DomainError, ServiceError) as exc:
                refused.append(f"{invoice_id}: {explain(exc)}")
                continue
            typer.echo(f"{invoice.id} requeued ({invoice.status.value})")
        return refused

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    refused = run_db(settings, requeue_each)
    for line in refused:
        typer.echo(f"error: {line}", err=True)
    if refused:
        raise typer.Exit(1)
