"""Who is asking: the session cookie, the role a page needs, and the CSRF token every form
carries.

The cookie is HttpOnly (no script can read it), SameSite=Strict (no other site's page can make
the browser send it on a post), Secure when the request came over TLS (directly, or through a
trusted proxy's X-Forwarded-Proto), scoped to /console, and expires with the session. Every post
also carries the session's CSRF token in a form field, compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import Response

from kaipiao.api.console.render import page
from kaipiao.services import operators
from kaipiao.services.operators import Session

COOKIE = "kaipiao_console"
SIGN_IN_COOKIE = "kaipiao_sign_in"
MAX_FORM_BYTES = 64 * 1024


class SignInNeeded(Exception):
    """No live session: a page answers with the sign-in page's address."""


class Refused(Exception):
    """Signed in, but not allowed (role) or the form's CSRF token is wrong: 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # a word of the i18n table


async def current(request: Request) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    state = request.app.state
    return await operators.session_for(state.database, cookie, now=state.clock())


def need(role: str) -> object:
    async def dependency(request: Request) -> Session:
        session = await current(request)
        if session is None:
            raise SignInNeeded
        if not operators.can(session.operator.role, role):
            raise Refused("forbidden")
        return session

    return Depends(dependency)


Viewer = Annotated[Session, need("viewer")]
Operator = Annotated[Session, need("operator")]
Admin = Annotated[Session, need("admin")]


async def form(request: Request) -> dict[str, list[str]]:
    """The posted form (application/x-www-form-urlencoded), at most 64 KiB."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Refused("csrf")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def first(fields: dict[str, list[str]], name: str) -> str:
    values = fields.get(name)
    return values[0].strip() if values else ""


async def checked_form(request: Request, session: Session) -> dict[str, list[str]]:
    """The posted form, if it carries this session's CSRF token; Refused otherwise."""
    fields = await form(request)
    if not hmac.compare_digest(first(fields, "csrf").encode(), session.csrf.encode()):
        raise Refused("csrf")
    return fields


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def sign_in_form(request: Request, status: int = 200, problem: str | None = None) -> Response:
    """The sign-in page, with a fresh token in a cookie and in the form (double submit): a page
    of another site cannot sign the browser in under the attacker's name (login CSRF)."""
    token = secrets.token_urlsafe(24)
    response = page(request, "sign_in.html", status=status, session=None, problem=problem,
                    sign_in_token=token)  # fmt: skip
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, path="/console", httponly=True,
                        secure=is_tls(request), samesite="strict")  # fmt: skip
    return response


def sign_in_token_ok(request: Request, fields: dict[str, list[str]]) -> bool:
    cookie = request.cookies.get(SIGN_IN_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), first(fields, "csrf").encode())
