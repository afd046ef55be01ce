"""The console's invoice search: every seller's invoices by what an operator has in hand (an
order id, an invoice number, a serial, an invoice id, the buyer's name or tax id), filtered by
status, seller and time, a page at a time.

Each way in is an equality on an index (`ix_invoices_order_id`, `ix_invoices_number`, the
serial's unique index, the primary key, the buyer expression indexes of migration 0011), so a
search reads only the rows that match, whatever the table's size. Without a query, a page is a
backward range of the primary key (or of `ix_invoices_status_listing` / the seller listing):
invoice ids begin with their time, so "before this id" is the cursor and a date range is an id
range (`kaipiao.services.ids.invoice_id_floor`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal_column, select, union
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import Status
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import invoices


def buyer_field(conn: Connection, field: str) -> Any:
    """The expression the migration indexes (`ix_invoices_buyer_<field>`)."""
    if conn.dialect.name == "sqlite":
        return func.json_extract(invoices.c.buyer, f"$.{field}")
    return literal_column(f"(invoices.buyer::json ->> '{field}')")


def _matching_ids(conn: Connection, query: str) -> Any:
    """Ids of the invoices any of the indexed fields equals `query`: a union of index lookups
    (an OR over several columns would let the planner scan the table instead)."""
    c = invoices.c
    lookups = [
        select(c.id).where(c.order_id == query),
        select(c.id).where(c.invoice_number == query),
        select(c.id).where(c.serial_no == query),
        select(c.id).where(c.id == query),
        select(c.id).where(buyer_field(conn, "tax_id") == query),
        select(c.id).where(buyer_field(conn, "name") == query),
    ]
    return union(*lookups).subquery()


def search_invoices(
    conn: Connection,
    *,
    query: str | None = None,
    status: Status | None = None,
    seller_id: str | None = None,
    from_id: str | None = None,
    until_id: str | None = None,
    before_id: str | None = None,
    limit: int = 50,
) -> list[StoredInvoice]:
    """Newest first, at most `limit`; `before_id` continues after the previous page's last
    invoice, `from_id` / `until_id` bound the ids (a date range)."""
    c = invoices.c
    statement = select(invoices)
    if query:
        matching = _matching_ids(conn, query)
        statement = statement.where(c.id.in_(select(matching.c.id)))
    if status is not None:
        statement = statement.where(c.status == status.value)
    if seller_id is not None:
        statement = statement.where(c.seller_id == seller_id)
    if from_id is not None:
        statement = statement.where(c.id >= from_id)
    if until_id is not None:
        statement = statement.where(c.id < until_id)
    if before_id is not None:
        statement = statement.where(c.id < before_id)
    rows = conn.execute(statement.order_by(c.id.desc()).limit(limit))
    return [StoredInvoice.from_row(row) for row in rows]


def issued_per_minute(conn: Connection, since: Any) -> list[tuple[str, int]]:
    """Invoices issued per UTC minute since `since` ("YYYY-MM-DD HH:MM", count), read on
    `ix_invoices_issued_at`."""
    if conn.dialect.name == "sqlite":
        minute = func.strftime("%Y-%m-%d %H:%M", invoices.c.issued_at)
    else:
        minute = func.to_char(
            func.timezone("UTC", invoices.c.issued_at), literal_column("'YYYY-MM-DD HH24:MI'")
        )
    rows = conn.execute(
        select(minute, func.count()).where(invoices.c.issued_at >= since).group_by(minute)
    )
    return sorted((str(m), int(n)) for m, n in rows)
