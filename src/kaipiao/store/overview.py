"""What operators look at: queue depth and age, affected sellers, worker heartbeats."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import Status
from kaipiao.store.tables import invoices, reconcile_runs, sellers, worker_heartbeats

WAITING = (Status.QUEUED.value, Status.ISSUING.value, Status.REVERSING.value)


OPEN = (*WAITING, Status.ATTENTION.value)
EXACT_BELOW = 200_000
"""Below this many invoices (PostgreSQL's estimate), finished statuses are counted exactly."""


def counts_by_status(conn: Connection) -> tuple[dict[str, int], bool]:
    """Invoices per status, and whether the finished statuses' counts are estimates.

    Open statuses (waiting, attention) are always counted exactly, on the status index: they are
    what an operator acts on, and they are few. Counting the finished ones exactly reads every
    row (217 ms at 1,000,000 invoices, bench/console.py), so on a large PostgreSQL table they are
    PostgreSQL's own estimate instead: the table's row estimate times each status's frequency in
    its statistics (`pg_stats`, kept by autovacuum's ANALYZE)."""
    open_rows = conn.execute(
        select(invoices.c.status, func.count())
        .where(invoices.c.status.in_(OPEN))
        .group_by(invoices.c.status)
    )
    counts = {status: int(count) for status, count in open_rows}
    estimated = _finished_estimate(conn) if conn.dialect.name == "postgresql" else None
    if estimated is None:
        rows = conn.execute(
            select(invoices.c.status, func.count())
            .where(invoices.c.status.not_in(OPEN))
            .group_by(invoices.c.status)
        )
        return counts | {status: int(count) for status, count in rows}, False
    return counts | estimated, True


def _finished_estimate(conn: Connection) -> dict[str, int] | None:
    """Finished statuses from the planner's statistics, or None while the table is small or has
    no statistics yet (then counting is cheap, or the only way)."""
    rows = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'invoices'::regclass"))
    total = float(rows.scalar_one())
    if total < EXACT_BELOW:
        return None
    stats = conn.execute(text(
        "SELECT most_common_vals::text::text[], most_common_freqs FROM pg_stats "
        "WHERE tablename = 'invoices' AND attname = 'status' AND schemaname = current_schema()"
    )).first()  # fmt: skip
    if stats is None or stats[0] is None:
        return None
    return {value: round(freq * total) for value, freq in zip(stats[0], stats[1], strict=True)
            if value not in OPEN and round(freq * total) > 0}  # fmt: skip


def oldest_waiting(conn: Connection) -> datetime | None:
    """When the oldest invoice still waiting to be issued (or reversed) was accepted."""
    value: datetime | None = conn.execute(
        select(func.min(invoices.c.created_at)).where(invoices.c.status.in_(WAITING))
    ).scalar()
    return value


def active_sellers(conn: Connection, since_id: str) -> int:
    """Sellers with an invoice whose id is at least `since_id` (ids begin with their time, so
    this is a range of the primary key, not a scan of every invoice ever), or one still waiting
    or in attention (the status index)."""
    recent = select(invoices.c.seller_id).where(invoices.c.id >= since_id)
    open_ = select(invoices.c.seller_id).where(
        invoices.c.status.in_([*WAITING, Status.ATTENTION.value])
    )
    return int(
        conn.execute(select(func.count()).select_from(recent.union(open_).subquery())).scalar_one()
    )


def affected_sellers(
    conn: Connection, *, late_before: datetime, rejected_since: datetime, since_id: str
) -> int:
    """Sellers with an invoice in attention, one waiting since before `late_before` (beyond the
    SLO), or one accepted since `since_id` and refused by the platform since `rejected_since`.
    Each part reads the status index, bounded by what is open or recent."""
    attention = select(invoices.c.seller_id).where(invoices.c.status == Status.ATTENTION.value)
    late = select(invoices.c.seller_id).where(
        invoices.c.status.in_(WAITING), invoices.c.created_at < late_before
    )
    refused = select(invoices.c.seller_id).where(
        invoices.c.status == Status.REJECTED.value,
        invoices.c.id >= since_id,
        invoices.c.updated_at >= rejected_since,
    )
    union = attention.union(late, refused).subquery()
    return int(conn.execute(select(func.count()).select_from(union)).scalar_one())


def quota_total(conn: Connection) -> float:
    return float(
        conn.execute(select(func.coalesce(func.sum(sellers.c.quota_per_s), 0))).scalar_one()
    )


def beat(conn: Connection, owner: str, now: datetime, state: dict[str, Any]) -> None:
    conn.execute(delete(worker_heartbeats).where(worker_heartbeats.c.owner == owner))
    conn.execute(
        worker_heartbeats.insert().values(owner=owner, seen_at=now, state=json.dumps(state))
    )


def forget_worker(conn: Connection, owner: str) -> None:
    conn.execute(delete(worker_heartbeats).where(worker_heartbeats.c.owner == owner))


def workers_seen(conn: Connection, since: datetime) -> list[tuple[str, datetime, dict[str, Any]]]:
    rows = conn.execute(
        select(worker_heartbeats)
        .where(worker_heartbeats.c.seen_at >= since)
        .order_by(worker_heartbeats.c.owner)
    )
    return [(r.owner, r.seen_at, json.loads(r.state)) for r in rows]


def last_deviation(conn: Connection) -> float | None:
    """The newest reconciliation run's contradictions / invoices checked (None: never run)."""
    row = conn.execute(
        select(reconcile_runs.c.checked, reconcile_runs.c.contradictions)
        .order_by(reconcile_runs.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return row.contradictions / row.checked if row.checked else 0.0


def counts_for_sellers(conn: Connection, seller_ids: list[str]) -> dict[str, int]:
    """Invoices by status for these sellers only (a drill's, in a store that may hold others)."""
    rows = conn.execute(
        select(invoices.c.status, func.count())
        .where(invoices.c.seller_id.in_(seller_ids))
        .group_by(invoices.c.status)
    )
    return {status: int(count) for status, count in rows}


def outcomes_for_sellers(conn: Connection, seller_ids: list[str]) -> list[dict[str, Any]]:
    """Every invoice of these sellers with what a drill checks: order, status, times, number."""
    columns = (invoices.c.seller_id, invoices.c.order_id, invoices.c.kind, invoices.c.status,
               invoices.c.serial_no, invoices.c.invoice_number, invoices.c.created_at,
               invoices.c.issued_at)  # fmt: skip
    rows = conn.execute(select(*columns).where(invoices.c.seller_id.in_(seller_ids)))
    return [dict(row._mapping) for row in rows]


def backlog(conn: Connection) -> int:
    """Invoices waiting to be issued (queued + issuing), counted on the queue's index."""
    waiting = (Status.QUEUED.value, Status.ISSUING.value)
    return int(
        conn.execute(
            select(func.count()).select_from(invoices).where(invoices.c.status.in_(waiting))
        ).scalar_one()
    )


def intake_by_hour(conn: Connection, since_id: str) -> list[tuple[str, str, str, int]]:
    """Invoices accepted per seller and UTC hour since the invoice id `since_id` (ids grow with
    time, so the primary key bounds the scan): (seller id, region, "YYYY-MM-DD HH", count)."""
    if conn.dialect.name == "sqlite":
        hour = func.strftime("%Y-%m-%d %H", invoices.c.created_at)
    else:
        utc = func.timezone("UTC", invoices.c.created_at)
        hour = func.to_char(func.date_trunc("hour", utc), "YYYY-MM-DD HH24")
    rows = conn.execute(
        select(invoices.c.seller_id, invoices.c.region, hour.label("hour"), func.count())
        .where(invoices.c.id >= since_id)
        .group_by(invoices.c.seller_id, invoices.c.region, hour)
    )
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]


def seller_quotas(conn: Connection) -> dict[str, tuple[str, float | None]]:
    """Every seller's region and platform quota (calls/s; None: unlimited)."""
    rows = conn.execute(select(sellers.c.id, sellers.c.region, sellers.c.quota_per_s))
    return {r.id: (r.region, None if r.quota_per_s is None else float(r.quota_per_s)) for r in rows}
