"""Orders and their invoices beyond one-to-one: the claims of merged invoices (合并开票) and the
check that keeps an order on one invoice group however it was asked for.

Two namespaces hold "this order is invoiced": `invoices.order_key` (one order, or part 1 of a
split one) and `order_claims` (each order of a merged invoice). Intake of one order inserts into
the first and then looks in the second (`claimed`); a merged request locks the invoices table
(PostgreSQL: SHARE ROW EXCLUSIVE, which waits for every open insert into it and holds new ones
back) before it looks in both and claims its orders. So a merged request and a single one for
the same order cannot both pass: whichever commits second sees the first. On SQLite one writer
runs every unit of work in turn, which gives the same order.
"""

from __future__ import annotations

from sqlalchemy import insert, or_, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from kaipiao.domain.lifecycle import Kind
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import invoices, order_claims


def lock_for_merge(conn: Connection) -> None:
    """Hold back intake's inserts until this unit of work commits (PostgreSQL; SQLite's single
    writer already does)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE invoices IN SHARE ROW EXCLUSIVE MODE")


def claimed(conn: Connection, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (seller id, order id) pairs belong to a merged invoice."""
    if not pairs:
        return set()
    rows = conn.execute(
        select(order_claims.c.seller_id, order_claims.c.order_id).where(
            tuple_(order_claims.c.seller_id, order_claims.c.order_id).in_(pairs)
        )
    )
    return {(row[0], row[1]) for row in rows}


def invoiced_orders(conn: Connection, seller_id: str, order_ids: list[str]) -> dict[str, str]:
    """Order id → the invoice that has it (its own, part 1 of its split, or a merged one), for
    those of `order_ids` that are invoiced."""
    found: dict[str, str] = {}
    keyed = conn.execute(
        select(invoices.c.order_key, invoices.c.id).where(
            invoices.c.seller_id == seller_id, invoices.c.order_key.in_(order_ids)
        )
    )
    found.update({row[0]: row[1] for row in keyed})
    merged = conn.execute(
        select(order_claims.c.order_id, order_claims.c.invoice_id).where(
            order_claims.c.seller_id == seller_id, order_claims.c.order_id.in_(order_ids)
        )
    )
    found.update({row[0]: row[1] for row in merged})
    return found


def claim_orders(conn: Connection, seller_id: str, order_ids: list[str], invoice_id: str) -> None:
    """Record that `invoice_id` is the merged invoice of `order_ids` (checked free beforehand
    under `lock_for_merge`; a clash still fails on the primary key)."""
    conn.execute(
        insert(order_claims),
        [{"seller_id": seller_id, "order_id": order_id, "invoice_id": invoice_id}
         for order_id in order_ids],
    )  # fmt: skip


def order_filter(seller_id: str, order_id: str) -> ColumnElement[bool]:
    """The condition "an invoice of this order": its own order id, or the order id of the
    merged invoice (group) that claimed it."""
    head = invoices.alias("merged_head")
    merged_heads = (
        select(head.c.order_id)
        .join(order_claims, order_claims.c.invoice_id == head.c.id)
        .where(order_claims.c.seller_id == seller_id, order_claims.c.order_id == order_id)
        .scalar_subquery()
    )
    return or_(invoices.c.order_id == order_id, invoices.c.order_id == merged_heads)


def group(conn: Connection, head: StoredInvoice) -> list[StoredInvoice]:
    """Every blue invoice of `head`'s order group (its split parts), part 1 first."""
    rows = conn.execute(
        select(invoices)
        .where(
            invoices.c.seller_id == head.seller_id,
            invoices.c.order_id == head.order_id,
            invoices.c.kind == Kind.BLUE.value,
        )
        .order_by(invoices.c.part)
    )
    return [StoredInvoice.from_row(row) for row in rows]


def find_merged(conn: Connection, seller_id: str, order_id: str) -> StoredInvoice | None:
    """The merged invoice (part 1) that claimed `order_id`, or None."""
    row = conn.execute(
        select(invoices)
        .join(order_claims, order_claims.c.invoice_id == invoices.c.id)
        .where(order_claims.c.seller_id == seller_id, order_claims.c.order_id == order_id)
    ).first()
    return StoredInvoice.from_row(row) if row else None
