"""The console's posts: sign in and out, confirm and run an action on invoices, manage sellers'
keys, verify the ledger. Each checks the role and the form's CSRF token first (session.py), then
calls one service; every change is a ledger event naming the operator."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kaipiao.api.console.render import page
from kaipiao.api.console.session import (
    COOKIE,
    SIGN_IN_COOKIE,
    Admin,
    Operator,
    Viewer,
    checked_form,
    first,
    form,
    is_tls,
    sign_in_form,
    sign_in_token_ok,
)
from kaipiao.services import console, keys, operators, sellers, verification
from kaipiao.services.errors import ServiceError
from kaipiao.services.reversal import REASONS

router = APIRouter(prefix="/console", include_in_schema=False)


def _ids(fields: dict[str, list[str]]) -> list[str]:
    return [value for value in fields.get("ids", []) if value][: console.BULK_MOST]


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the name and secret (rate-limited per name and address); start a session."""
    state = request.app.state
    fields = await form(request)
    if not sign_in_token_ok(request, fields):
        return sign_in_form(request, 403, "csrf")
    name, secret = first(fields, "name"), first(fields, "secret")
    address = request.client.host if request.client else "-"
    if not state.sign_in_limiter.allow(name, address, time.monotonic()):
        return sign_in_form(request, 429, "too_many")
    lifetime = timedelta(minutes=state.settings.console_session_minutes)
    session = await operators.sign_in(state.database, name, secret, now=state.clock(),
                                      lifetime=lifetime)  # fmt: skip
    if session is None:
        return sign_in_form(request, 401, "bad_sign_in")
    response = RedirectResponse("/console", status_code=303)
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    response.set_cookie(
        COOKIE, session.cookie, max_age=int(lifetime.total_seconds()), path="/console",
        httponly=True, secure=is_tls(request), samesite="strict",
    )  # fmt: skip
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: Viewer) -> Response:
    """End the session (in the store: the cookie is worthless from now on)."""
    await checked_form(request, session)
    await operators.sign_out(request.app.state.database, session.cookie)
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.post("/confirm", response_class=HTMLResponse)
async def confirm(request: Request, session: Operator) -> HTMLResponse:
    """The confirmation step: what will be done to which invoices, and the reason."""
    fields = await checked_form(request, session)
    action = first(fields, "action")
    if action not in console.ACTIONS:
        raise ServiceError("unknown action", "invalid_request")
    return page(request, "confirm.html", session=session, action=action, ids=_ids(fields),
                reasons=REASONS)  # fmt: skip


@router.post("/act", response_class=HTMLResponse)
async def act(request: Request, session: Operator) -> Response:
    """Run the confirmed action on each invoice, as this operator."""
    fields = await checked_form(request, session)
    state = request.app.state
    ids = _ids(fields)
    result = await console.act_on_many(
        state.database, first(fields, "action"), ids, by=console.actor(session.operator.name),
        now=state.clock(), reason=first(fields, "reason"), note=first(fields, "note"),
    )  # fmt: skip
    if len(ids) == 1 and result.done:
        return RedirectResponse(f"/console/invoices/{ids[0]}", status_code=303)
    return page(request, "result.html", session=session, result=result)


async def _keys_page(request: Request, session: operators.Session,
                     new_key: tuple[str, str] | None) -> HTMLResponse:  # fmt: skip
    db = request.app.state.database
    return page(request, "sellers.html", session=session, sellers=await sellers.list_sellers(db),
                platforms=await sellers.platforms(db), new_key=new_key)  # fmt: skip


@router.post("/sellers", response_class=HTMLResponse)
async def add_seller(request: Request, session: Admin) -> HTMLResponse:
    """Add a seller (its first key is shown once)."""
    fields = await checked_form(request, session)
    state = request.app.state
    quota_per_s = _quota(first(fields, "quota"))
    networks = tuple(n.strip() for n in first(fields, "networks").split(",") if n.strip())
    new = await sellers.add_seller(
        state.database, name=first(fields, "name"), tax_id=first(fields, "tax_id"),
        now=state.clock(), region=first(fields, "region") or "31", quota_per_s=quota_per_s,
        allowed_networks=networks, by=console.actor(session.operator.name),
    )  # fmt: skip
    return await _keys_page(request, session, (new.seller.id, new.api_key))


def _quota(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        raise ServiceError("quota is a number of calls per second", "invalid_quota") from None


@router.post("/sellers/{seller_id}/limits", response_class=HTMLResponse)
async def set_limits(seller_id: str, request: Request, session: Admin) -> HTMLResponse:
    """Change the seller's quota and allowed networks."""
    fields = await checked_form(request, session)
    state = request.app.state
    quota = _quota(first(fields, "quota"))
    networks = tuple(n.strip() for n in first(fields, "networks").split(",") if n.strip())
    await sellers.set_limits(state.database, seller_id, quota_per_s=quota,
                             allowed_networks=networks, now=state.clock(),
                             by=console.actor(session.operator.name))  # fmt: skip
    return await _keys_page(request, session, None)


@router.post("/sellers/{seller_id}/rotate", response_class=HTMLResponse)
async def rotate_key(seller_id: str, request: Request, session: Admin) -> HTMLResponse:
    """A new key for the seller (shown once); its other keys end after the usual overlap."""
    await checked_form(request, session)
    state = request.app.state
    new = await keys.rotate_key(state.database, seller_id, now=state.clock(),
                                by=console.actor(session.operator.name))  # fmt: skip
    return await _keys_page(request, session, (seller_id, new.api_key))


@router.post("/sellers/{seller_id}/revoke", response_class=HTMLResponse)
async def revoke_keys(seller_id: str, request: Request, session: Admin) -> HTMLResponse:
    """Revoke every key of the seller at once."""
    await checked_form(request, session)
    state = request.app.state
    await keys.revoke(state.database, now=state.clock(), seller_id=seller_id,
                      by=console.actor(session.operator.name))  # fmt: skip
    return await _keys_page(request, session, None)


@router.post("/audit/verify")
async def verify(request: Request, session: Admin) -> Response:
    """Walk the whole chain now and keep the verdict for the audit page."""
    from kaipiao.bootstrap import signer_for

    await checked_form(request, session)
    state = request.app.state
    verdict = await verification.verify(state.database, signer_for(state.settings).public)
    state.console_verdict = (state.clock(), verdict)
    return RedirectResponse("/console/audit", status_code=303)
