"""The console's operators page (admins only): list, add (the one-time token shown once),
disable. The same use cases as `kaipiao operator add | list | disable`, recorded in the ledger."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from kaipiao.api.console.render import page
from kaipiao.api.console.session import Admin, checked_form, first
from kaipiao.services import console, operators
from kaipiao.services.operators import ROLES, Session

router = APIRouter(prefix="/console", include_in_schema=False)


async def _page(request: Request, session: Session, new: operators.NewOperator | None = None
                ) -> HTMLResponse:  # fmt: skip
    found = await operators.list_operators(request.app.state.database)
    return page(request, "operators.html", session=session, operators=found, roles=ROLES,
                new=new)  # fmt: skip


@router.get("/operators", response_class=HTMLResponse)
async def operator_list(request: Request, session: Admin) -> HTMLResponse:
    """Every operator and their role."""
    return await _page(request, session)


@router.post("/operators", response_class=HTMLResponse)
async def operator_add(request: Request, session: Admin) -> HTMLResponse:
    """Add an operator; their one-time sign-in token is shown once."""
    fields = await checked_form(request, session)
    state = request.app.state
    new = await operators.add_operator(state.database, name=first(fields, "name"),
                                       role=first(fields, "role"), now=state.clock(),
                                       by=console.actor(session.operator.name))  # fmt: skip
    return await _page(request, session, new)


@router.post("/operators/{name}/disable", response_class=HTMLResponse)
async def operator_disable(name: str, request: Request, session: Admin) -> HTMLResponse:
    """Disable an operator: their sessions end at once."""
    await checked_form(request, session)
    state = request.app.state
    await operators.disable(state.database, name, now=state.clock(),
                            by=console.actor(session.operator.name))  # fmt: skip
    return await _page(request, session)
