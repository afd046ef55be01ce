"""The console's use cases: what its pages read and what its buttons do.

Every action is the CLI's own unit of work (`operations.requeue_work`, `cancellation.cancel_work`,
`reversal.reverse_work`) run under `events.acting_as`, so its ledger event says which operator
asked (`"by": "console:<name>"`). Reads are repository calls; nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from kaipiao.domain.lifecycle import Status
from kaipiao.ledger.signing import Checkpoint
from kaipiao.services import ids
from kaipiao.services.cancellation import cancel_work
from kaipiao.services.errors import NotFound, ServiceError
from kaipiao.services.operations import requeue_work
from kaipiao.services.reversal import REASONS, reverse_work
from kaipiao.store import events, search, webhooks
from kaipiao.store import invoices as invoice_repo
from kaipiao.store import ledger as ledger_repo
from kaipiao.store import sellers as seller_repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.records import StoredInvoice

T = TypeVar("T")
PAGE = 50
ACTIONS = ("requeue", "cancel", "reverse")
BULK_MOST = 200


def actor(name: str) -> str:
    return f"console:{name}"


@dataclass(frozen=True, slots=True)
class Filters:
    query: str | None = None
    status: Status | None = None
    seller_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None


async def search_invoices(
    db: Database, filters: Filters, limit: int = PAGE
) -> tuple[list[StoredInvoice], str | None]:
    """A page of every seller's invoices matching `filters`, newest first, and the next page's
    cursor (None on the last)."""
    if filters.cursor is not None and not ids.is_invoice_id(filters.cursor):
        raise ServiceError("cursor must be an invoice id", "invalid_cursor")
    query = (filters.query or "").strip()[:64] or None
    from_id = ids.invoice_id_floor(filters.since) if filters.since else None
    until_id = ids.invoice_id_floor(filters.until) if filters.until else None
    page = await db.read(lambda conn: search.search_invoices(
        conn, query=query, status=filters.status, seller_id=filters.seller_id,
        from_id=from_id, until_id=until_id, before_id=filters.cursor, limit=limit + 1,
    ))  # fmt: skip
    more = len(page) > limit
    page = page[:limit]
    return page, (page[-1].id if more and page else None)


@dataclass
class Detail:
    invoice: StoredInvoice
    events: list[dict[str, Any]]
    deliveries: list[dict[str, Any]]
    related: list[StoredInvoice] = field(default_factory=list)  # its red invoices / original


async def detail(db: Database, invoice_id: str) -> Detail:
    """One invoice with its ledger events (the timeline), webhook deliveries and relatives."""

    def read(conn: Conn) -> Detail:
        invoice = invoice_repo.get_invoice(conn, invoice_id)
        if invoice is None:
            raise NotFound(f"no invoice {invoice_id}")
        found = Detail(invoice, events.events_for(conn, invoice_id),
                       webhooks.for_invoice(conn, invoice_id))  # fmt: skip
        if invoice.original_id:
            original = invoice_repo.get_invoice(conn, invoice.original_id)
            found.related = [original] if original else []
        return found

    return await db.read(read)


def _as(by: str, note: str, work: Callable[[Conn], T]) -> Callable[[Conn], T]:
    def run(conn: Conn) -> T:
        with events.acting_as(conn, by, note[:500]):
            return work(conn)

    return run


def _seller_of(conn: Conn, invoice_id: str) -> Any:
    invoice = invoice_repo.get_invoice(conn, invoice_id)
    seller = seller_repo.get_seller(conn, invoice.seller_id) if invoice else None
    if seller is None:
        raise NotFound(f"no invoice {invoice_id}")
    return seller


async def act(
    db: Database, action: str, invoice_id: str, *, by: str, now: datetime, reason: str = "",
    note: str = "",
) -> StoredInvoice:  # fmt: skip
    """Requeue, cancel or reverse (with `reason`, one of REASONS) one invoice as operator `by`,
    through the same unit of work as the CLI and the seller API; `note` is the operator's
    reason in their words, kept in the ledger event."""
    if action == "requeue":
        work = requeue_work(invoice_id, now)
    elif action == "cancel":

        def work(conn: Conn) -> StoredInvoice:
            return cancel_work(_seller_of(conn, invoice_id), invoice_id, now)(conn)
    elif action == "reverse":
        if reason not in REASONS:
            raise ServiceError(f"reason must be one of {', '.join(REASONS)}", "invalid_reason")

        def work(conn: Conn) -> StoredInvoice:
            seller = _seller_of(conn, invoice_id)
            return reverse_work(seller, invoice_id, reason, now, None, None)(conn)
    else:
        raise ServiceError(f"action is one of {', '.join(ACTIONS)}", "invalid_request")
    return await db.write(_as(by, note, work))


@dataclass(frozen=True, slots=True)
class BulkResult:
    done: list[str]
    failed: list[tuple[str, str]]  # (invoice id, the error's message)


async def act_on_many(
    db: Database, action: str, invoice_ids: list[str], *, by: str, now: datetime,
    reason: str = "", note: str = "",
) -> BulkResult:  # fmt: skip
    """`act` on each invoice in its own transaction: one that cannot be acted on (it changed
    meanwhile) does not stop the others."""
    if len(invoice_ids) > BULK_MOST:
        raise ServiceError(f"at most {BULK_MOST} invoices at once", "invalid_request")
    done, failed = [], []
    for invoice_id in dict.fromkeys(invoice_ids):
        try:
            await act(db, action, invoice_id, by=by, now=now, reason=reason, note=note)
            done.append(invoice_id)
        except ServiceError as exc:
            failed.append((invoice_id, exc.message))
    return BulkResult(done, failed)


async def operator_actions(
    db: Database, *, name: str | None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest ledger events an operator asked for (all operators', or `name`'s)."""
    who = actor(name) if name else None
    return await db.read(lambda conn: events.actor_events(conn, actor=who, limit=limit))


async def ledger_state(db: Database) -> tuple[int, Checkpoint | None]:
    """The chain's length and its last signed checkpoint."""

    def read(conn: Conn) -> tuple[int, Checkpoint | None]:
        return ledger_repo.head(conn)[0], ledger_repo.latest_checkpoint(conn)

    return await db.read(read)


async def issued_per_minute(db: Database, now: datetime) -> list[tuple[str, int]]:
    """Invoices issued in each of the last 60 minutes (UTC), oldest first, zeros included."""
    start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    counts = dict(await db.read(lambda conn: search.issued_per_minute(conn, start)))
    minutes = [(start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M") for i in range(60)]
    return [(minute, counts.get(minute, 0)) for minute in minutes]
