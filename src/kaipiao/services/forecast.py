"""When will a quota or the backlog SLO be exceeded at the current trend? (`kaipiao status`,
`kaipiao plan --from-history`.)

From the stored intake (invoices accepted per seller and hour over `HISTORY`), the hourly intake
ahead is forecast (`warn.forecast`: the same hour a day earlier × the day's growth; a straight line
through the last hours with under two days of history) and compared with:

- a seller's quota: its platform quota (calls/s) × 3600 per hour, one call per invoice;
- a province's quota: the sum of its sellers' quotas (only when every seller there has one);
- the backlog SLO: arrivals beyond the deployment's quota (the sum of every seller's, when all
  have one) piling up more than 5 minutes of issuing.

One call per invoice is the floor (a retry or a query costs more calls), so the hours given are
the latest the limit is reached at that trend, not the earliest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kaipiao.services import ids
from kaipiao.store import overview
from kaipiao.store.database import Conn, Database
from kaipiao.warn import forecast as model

HISTORY = timedelta(hours=72)
AHEAD_H = 48
SLO_S = 300.0


@dataclass(frozen=True, slots=True)
class Exhaustion:
    scope: str  # "seller", "province" or "backlog-slo"
    key: str  # seller id, province code, or "all"
    limit_per_h: float
    current_per_h: float  # the last full hour's intake
    hours: int | None  # hours until exceeded at the current trend (None: not within AHEAD_H)
    model: str

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "key": self.key, "limit_per_h": self.limit_per_h,
                "current_per_h": self.current_per_h, "hours": self.hours,
                "model": self.model}  # fmt: skip


def series(counts: dict[str, int], now: datetime) -> list[float]:
    """Hourly counts keyed "YYYY-MM-DD HH" → full hours before `now`'s, oldest first."""
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = int(HISTORY.total_seconds() // 3600)
    keys = [(this_hour - timedelta(hours=h)).strftime("%Y-%m-%d %H") for h in range(hours, 0, -1)]
    values = [float(counts.get(k, 0)) for k in keys]
    while values and values[0] == 0:  # before the first intake: no history, not zero traffic
        values.pop(0)
    return values


def assess(scope: str, key: str, hours: list[float], limit_per_h: float) -> Exhaustion | None:
    if len(hours) < 2:
        return None
    ahead = model.forecast(hours, AHEAD_H)
    if scope == "backlog-slo":
        when = model.hours_until_backlog(ahead.values, limit_per_h, SLO_S)
    else:
        when = model.hours_until(ahead.values, limit_per_h)
    return Exhaustion(scope, key, limit_per_h, hours[-1], when, ahead.model)


async def exhaustion(db: Database, now: datetime) -> list[Exhaustion]:
    """Every seller, province and the deployment with a quota, and when each is exceeded."""
    since_id = ids.invoice_id_floor(now - HISTORY)

    def read(conn: Conn) -> tuple[list[tuple[str, str, str, int]], dict[str, Any]]:
        return overview.intake_by_hour(conn, since_id), overview.seller_quotas(conn)

    rows, quotas = await db.read(read)
    by_seller: dict[str, dict[str, int]] = {}
    by_region: dict[str, dict[str, int]] = {}
    total: dict[str, int] = {}
    for seller_id, region, hour, count in rows:
        for table, key in ((by_seller, seller_id), (by_region, region)):
            bucket = table.setdefault(key, {})
            bucket[hour] = bucket.get(hour, 0) + count
        total[hour] = total.get(hour, 0) + count
    found: list[Exhaustion | None] = []
    for seller_id, counts in sorted(by_seller.items()):
        quota = quotas.get(seller_id, ("", None))[1]
        if quota is not None:
            found.append(assess("seller", seller_id, series(counts, now), quota * 3600))
    for region, counts in sorted(by_region.items()):
        there = [q for r, q in quotas.values() if r == region]
        if there and all(q is not None for q in there):
            limit = sum(q for q in there if q is not None) * 3600
            found.append(assess("province", region, series(counts, now), limit))
    every = [q for _, q in quotas.values()]
    if every and all(q is not None for q in every) and total:
        capacity = sum(q for q in every if q is not None) * 3600
        found.append(assess("backlog-slo", "all", series(total, now), capacity))
    return [e for e in found if e is not None]


async def recent_intake(db: Database, now: datetime) -> list[float]:
    """The deployment's intake per full hour over `HISTORY`, oldest first."""
    since_id = ids.invoice_id_floor(now - HISTORY)
    rows = await db.read(lambda conn: overview.intake_by_hour(conn, since_id))
    total: dict[str, int] = {}
    for _, _, hour, count in rows:
        total[hour] = total.get(hour, 0) + count
    return series(total, now)


def render(found: list[Exhaustion]) -> list[str]:
    if not found:
        return ["forecast:   no quota to forecast against (or under 2 hours of intake)"]
    soon = [e for e in found if e.hours is not None]
    lines = [f"forecast:   {len(soon)} of {len(found)} limits exceeded within {AHEAD_H} h "
             "at the current trend"]  # fmt: skip
    for e in sorted(found, key=lambda e: (e.hours is None, e.hours or 0, e.scope, e.key)):
        when = f"in {e.hours} h" if e.hours is not None else f"not within {AHEAD_H} h"
        lines.append(f"  {e.scope} {e.key}: {e.current_per_h:g}/h now, limit {e.limit_per_h:g}/h,"
                     f" exceeded {when} ({e.model} trend)")  # fmt: skip
    return lines
