"""Reconciliation runs: each one recorded, so the deviation rate is a metric and `kaipiao status`
shows the last (`overview.last_deviation`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from kaipiao.store.tables import reconcile_runs


def record_run(
    conn: Connection,
    *,
    started_at: datetime,
    finished_at: datetime,
    since: datetime,
    checked: int,
    settled: int,
    contradictions: int,
    unreachable: int,
) -> None:
    """Record one reconciliation run and what it found."""
    conn.execute(
        reconcile_runs.insert().values(
            started_at=started_at, finished_at=finished_at, since=since, checked=checked,
            settled=settled, contradictions=contradictions, unreachable=unreachable,
        )
    )  # fmt: skip
