"""The operator's view: queue, workers' breakers and limits, and the incident level.

Incident levels come from the share of active sellers affected (an invoice in attention, one
waiting beyond the 5-minute SLO, or one refused by the platform in the last hour):
level 0 none affected; level 1 under 1% (handled internally); level 2 1–5% (respond within
2 hours); level 3 over 5% (respond within 30 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kaipiao.services import forecast, ids
from kaipiao.services.forecast import Exhaustion
from kaipiao.store import overview, webhooks
from kaipiao.store.database import Conn, Database
from kaipiao.store.ledger import head
from kaipiao.store.migrate import is_current

SLO = timedelta(minutes=5)
ACTIVE_WINDOW = timedelta(hours=24)
REJECTED_WINDOW = timedelta(hours=1)
WORKER_SEEN = timedelta(seconds=30)
RESPONSE = {0: "no incident", 1: "handled internally", 2: "respond within 2 hours",
            3: "respond within 30 minutes"}  # fmt: skip


def incident_level(affected: int, active: int) -> int:
    if affected == 0 or active == 0:
        return 0
    share = affected / active
    if share < 0.01:
        return 1
    if share <= 0.05:
        return 2
    return 3


@dataclass
class Snapshot:
    at: datetime
    counts: dict[str, int]
    oldest_waiting_s: float
    active_sellers: int
    affected_sellers: int
    quota_per_s: float
    ledger_events: int
    webhook_backlog: int = 0
    deviation: float | None = None  # the last reconciliation's contradictions / checked
    workers: list[tuple[str, datetime, dict[str, Any]]] = field(default_factory=list)
    # Active early warnings, each with the process that raised it (`source`), earliest first
    warnings: list[dict[str, Any]] = field(default_factory=list)
    forecast: list[Exhaustion] = field(default_factory=list)
    # Finished statuses' counts are PostgreSQL's estimates (a large table: store.overview)
    estimated: bool = False

    @property
    def level(self) -> int:
        return incident_level(self.affected_sellers, self.active_sellers)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "invoices": self.counts,
            "finished_counts_estimated": self.estimated,
            "oldest_waiting_s": round(self.oldest_waiting_s, 1),
            "sellers": {"active": self.active_sellers, "affected": self.affected_sellers},
            "incident": {"level": self.level, "response": RESPONSE[self.level]},
            "quota_per_s": self.quota_per_s,
            "ledger_events": self.ledger_events,
            "webhook_backlog": self.webhook_backlog,
            "reconcile_deviation": self.deviation,
            "workers": [
                {"owner": owner, "seen_at": seen.isoformat(), **state}
                for owner, seen, state in self.workers
            ],
            "warnings": [
                {**w, "since": _iso(w["since"]), "last": _iso(w["last"])} for w in self.warnings
            ],
            "forecast": [e.to_json() for e in self.forecast],
        }


def _iso(posix: float) -> str:
    return datetime.fromtimestamp(posix, UTC).isoformat()


def active_warnings(beats: list[tuple[str, datetime, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every live process's active warnings, earliest first, each with its `source`."""
    found = [{**w, "source": owner} for owner, _, state in beats
             for w in state.get("warnings", [])]  # fmt: skip
    return sorted(found, key=lambda w: (w["since"], w["signal"]))


async def schema_current(db: Database) -> bool:
    """Whether the store's schema is the one this code expects (readiness)."""
    return await is_current(db)


async def snapshot(db: Database, now: datetime, *, with_forecast: bool = True) -> Snapshot:
    """The deployment's state now; `with_forecast=False` leaves out the capacity forecast (an
    hourly model, a tenth of a second at a million invoices: the console's overview, refreshed
    every few seconds, does not show it)."""
    since_id = ids.invoice_id_floor(now - ACTIVE_WINDOW)

    def read(conn: Conn) -> Snapshot:
        oldest = overview.oldest_waiting(conn)
        counts, estimated = overview.counts_by_status(conn)
        return Snapshot(
            at=now,
            counts=counts,
            estimated=estimated,
            oldest_waiting_s=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            active_sellers=overview.active_sellers(conn, since_id),
            affected_sellers=overview.affected_sellers(
                conn,
                late_before=now - SLO,
                rejected_since=now - REJECTED_WINDOW,
                since_id=since_id,
            ),
            quota_per_s=overview.quota_total(conn),
            ledger_events=head(conn)[0],
            webhook_backlog=webhooks.backlog(conn),
            deviation=overview.last_deviation(conn),
            workers=overview.workers_seen(conn, now - WORKER_SEEN),
        )

    snap = await db.read(read)
    snap.warnings = active_warnings(snap.workers)
    snap.workers = [b for b in snap.workers if b[2].get("role") != "api"]
    if with_forecast:
        snap.forecast = await forecast.exhaustion(db, now)
    return snap


def render(snap: Snapshot) -> list[str]:
    """`kaipiao status`, one line per fact (README explains each)."""
    counts = snap.counts
    waiting = ", ".join(f"{s} {counts.get(s, 0)}" for s in overview.WAITING)
    done = ", ".join(f"{s} {counts.get(s, 0)}" for s in
                     ("issued", "rejected", "cancelled", "reversed"))  # fmt: skip
    lines = [
        f"queue:      {waiting}; oldest waiting {snap.oldest_waiting_s:.0f} s",
        f"attention:  {counts.get('attention', 0)}",
        f"finished:   {'≈ ' if snap.estimated else ''}{done}",
        f"sellers:    {snap.active_sellers} active, {snap.affected_sellers} affected",
        f"incident:   level {snap.level} ({RESPONSE[snap.level]})",
        "quota:      "
        + (
            f"{snap.quota_per_s:g} platform calls/s configured across sellers"
            if snap.quota_per_s
            else "no seller has a platform quota set"
        ),
        f"ledger:     {snap.ledger_events} events",
        f"webhooks:   {snap.webhook_backlog} waiting to be delivered",
        "reconcile:  "
        + ("never run" if snap.deviation is None else f"last run's deviation {snap.deviation:.4%}"),
        f"workers:    {len(snap.workers)} seen in the last {WORKER_SEEN.seconds} s",
    ]
    for owner, _, state in snap.workers:
        breakers = " ".join(f"{r}={s}" for r, s in state.get("breakers", {}).items()) or "-"
        limits = " ".join(f"{r}={n}" for r, n in state.get("limits", {}).items()) or "-"
        lines.append(f"  {owner}: in flight {state.get('in_flight', 0)}, breakers {breakers}, "
                     f"limits {limits}")  # fmt: skip
    lines.append(f"warnings:   {len(snap.warnings)} active" if snap.warnings else
                 "warnings:   none active")  # fmt: skip
    for w in snap.warnings:
        lines.append(f"  {w['signal']} since {_iso(w['since'])[:19]}Z: {w['value']:g} against a "
                     f"usual {w['baseline']:g} ({w['source']})")  # fmt: skip
    lines.extend(forecast.render(snap.forecast))
    return lines
