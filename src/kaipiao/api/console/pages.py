"""The console's pages (GET): overview, invoice search, one invoice, attention, sellers, audit.
Each reads through a service and renders a template; none writes."""

from __future__ import annotations

import json
from collections import deque
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from kaipiao.api.console.render import page
from kaipiao.api.console.session import Viewer, current, sign_in_form
from kaipiao.domain.lifecycle import Status
from kaipiao.services import console, ledger, sellers, status
from kaipiao.services.console import Filters
from kaipiao.services.errors import ServiceError
from kaipiao.services.reversal import REASONS

router = APIRouter(prefix="/console", include_in_schema=False)
REFRESH_S = 10
BACKLOG_SAMPLES = 60


def _day(text: str, *, end: bool = False) -> datetime | None:
    """A YYYY-MM-DD field as the start of that UTC day (`end`: of the next one)."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return datetime.combine(day + timedelta(days=1 if end else 0), time.min, UTC)


def _samples(request: Request) -> deque[tuple[str, int]]:
    """The backlog each time the overview was read, in this process (the last hour's chart)."""
    state = request.app.state
    if getattr(state, "console_backlog", None) is None:
        state.console_backlog = deque(maxlen=BACKLOG_SAMPLES)
    samples: deque[tuple[str, int]] = state.console_backlog
    return samples


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, session: Viewer) -> HTMLResponse:
    """What is wrong right now."""
    state = request.app.state
    now = state.clock()
    snap = await status.snapshot(state.database, now, with_forecast=False)
    backlog = sum(snap.counts.get(s, 0) for s in ("queued", "issuing", "reversing"))
    samples = _samples(request)
    minute = now.strftime("%H:%M")
    if samples and samples[-1][0] == minute:
        samples.pop()
    samples.append((minute, backlog))
    issued = await console.issued_per_minute(state.database, now)
    return page(
        request, "overview.html", session=session, snap=snap, refresh=REFRESH_S,
        backlog=backlog, issued=issued,
        backlog_series=list(samples), iso=lambda posix: datetime.fromtimestamp(posix, UTC),
    )  # fmt: skip


@router.get("/invoices", response_class=HTMLResponse)
async def invoices(request: Request, session: Viewer) -> HTMLResponse:
    """Search every seller's invoices."""
    q = request.query_params
    wanted = q.get("status") or ""
    filters = Filters(
        query=q.get("q") or None,
        status=Status(wanted) if wanted in {s.value for s in Status} else None,
        seller_id=q.get("seller") or None,
        since=_day(q.get("from", "")), until=_day(q.get("until", ""), end=True),
        cursor=q.get("cursor") or None,
    )  # fmt: skip
    try:
        found, cursor = await console.search_invoices(request.app.state.database, filters)
    except ServiceError:
        found, cursor = [], None
    keep = {k: v for k, v in q.items() if k != "cursor" and v}
    return page(request, "invoices.html", session=session, invoices=found, cursor=cursor,
                q=q, keep=keep, statuses=[s.value for s in Status])  # fmt: skip


@router.get("/invoices/{invoice_id}", response_class=HTMLResponse)
async def invoice(invoice_id: str, request: Request, session: Viewer) -> HTMLResponse:
    """One invoice: lines, totals, timeline, attempts, deliveries, proof."""
    found = await console.detail(request.app.state.database, invoice_id)
    timeline = [{**e, "payload": json.loads(e["payload"])} for e in found.events]
    return page(request, "invoice.html", session=session, d=found, i=found.invoice,
                timeline=timeline, reasons=REASONS)  # fmt: skip


@router.get("/invoices/{invoice_id}/proof")
async def proof(invoice_id: str, request: Request, session: Viewer) -> JSONResponse:
    """The invoice's inclusion proof, as the API gives it to its seller, to download."""
    state = request.app.state
    found = await console.detail(state.database, invoice_id)
    body = await ledger.inclusion_proof(state.database, invoice_id, found.invoice.seller_id,
                                        getattr(state, "tree_cache", None))  # fmt: skip
    disposition = f'attachment; filename="{invoice_id}-proof.json"'
    return JSONResponse(body, headers={"Content-Disposition": disposition})


@router.get("/attention", response_class=HTMLResponse)
async def attention(request: Request, session: Viewer) -> HTMLResponse:
    """The invoices that need a hand."""
    cursor = request.query_params.get("cursor") or None
    try:
        found, next_cursor = await console.search_invoices(
            request.app.state.database, Filters(status=Status.ATTENTION, cursor=cursor)
        )
    except ServiceError:
        found, next_cursor = [], None
    return page(request, "attention.html", session=session, invoices=found,
                cursor=next_cursor, reasons=REASONS)  # fmt: skip


@router.get("/sellers", response_class=HTMLResponse)
async def seller_list(request: Request, session: Viewer) -> HTMLResponse:
    """Every seller and its platform."""
    db = request.app.state.database
    return page(request, "sellers.html", session=session,
                sellers=await sellers.list_sellers(db),
                platforms=await sellers.platforms(db), new_key=None)  # fmt: skip


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, session: Viewer) -> HTMLResponse:
    """Operator actions, the ledger's length, last checkpoint and verification."""
    db = request.app.state.database
    name = request.query_params.get("operator") or None
    actions: list[dict[str, Any]] = [
        {**e, "payload": json.loads(e["payload"])}
        for e in await console.operator_actions(db, name=name)
    ]
    events, checkpoint = await console.ledger_state(db)
    return page(request, "audit.html", session=session, actions=actions, operator=name or "",
                events=events, checkpoint=checkpoint,
                verdict=getattr(request.app.state, "console_verdict", None))  # fmt: skip


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    """The sign-in form (or the overview, for a signed-in operator)."""
    if await current(request) is not None:
        return RedirectResponse("/console", status_code=303)
    return sign_in_form(request)


STATIC = {"console.css": "text/css", "refresh.js": "text/javascript"}


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The console's stylesheet and its one script."""
    if name not in STATIC:
        return Response(status_code=404)
    body = resources.files("kaipiao.api.console").joinpath(f"static/{name}").read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=3600"})
