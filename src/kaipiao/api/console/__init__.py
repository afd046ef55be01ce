"""The operator console under /console: server-rendered pages for the people on call
(docs/console.md; why no front-end build: docs/decisions/0010-console.md)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kaipiao.api import problems
from kaipiao.api.console import actions, operators, pages
from kaipiao.api.console.render import page
from kaipiao.api.console.session import Refused, SignInNeeded
from kaipiao.domain.errors import DomainError
from kaipiao.services.errors import ServiceError
from kaipiao.services.operators import SignInLimiter

Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def install(app: FastAPI) -> None:
    """Mount the console's routes, and render its errors as pages (the API's stay problem+json)."""
    app.state.sign_in_limiter = SignInLimiter(app.state.settings.console_sign_in_per_min)
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(operators.router)

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/console/sign-in", status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        reason = exc.reason if isinstance(exc, Refused) else "forbidden"
        return page(request, "error.html", status=403, session=None, problem=reason,
                    detail="")  # fmt: skip

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    app.add_exception_handler(Refused, refused)
    for kind in (DomainError, ServiceError, StarletteHTTPException):
        api_handler: Handler = app.exception_handlers[kind]
        app.add_exception_handler(kind, _as_page(api_handler))


def _as_page(api_handler: Handler) -> Callable[[Request, Any], Awaitable[Response]]:
    async def handle(request: Request, exc: Any) -> Response:
        if not request.url.path.startswith("/console"):
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        problem = problems.to_problem(exc)
        status = problem.status if problem is not None else 500
        detail = problem.detail if problem is not None else ""
        word = "not_found" if status == 404 else "error"
        return page(request, "error.html", status=status, session=None, problem=word,
                    detail=detail)  # fmt: skip

    return handle
