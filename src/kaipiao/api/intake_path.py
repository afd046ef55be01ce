"""`POST /v1/invoices`, served without FastAPI's per-request machinery.

Intake is the hot path. Measured under load, FastAPI's dependency solving, its telemetry hook and
its body handling cost more per request than parsing, pricing and storing the invoice together
(docs/decisions/0001). So this plain ASGI layer answers exactly this route, with the same
authentication, guards, validation and problem documents as every other route; everything else,
including this route's OpenAPI description, stays with FastAPI (see `kaipiao.api.routes`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json
from starlette.responses import JSONResponse

from kaipiao.api.auth import admit_seller, authenticate
from kaipiao.api.guards import ASGIApp, ClientGone, Receive, Scope, Send
from kaipiao.api.problems import Problem, problem_response, to_problem
from kaipiao.domain.sellers import Seller
from kaipiao.platform.outbound import OutboundRefused
from kaipiao.services import intake
from kaipiao.services.invoice_request import InvoiceCreate

PATH = "/v1/invoices"
# A lone UTF-16 surrogate can only arrive as a \uD800–\uDFFF escape; pydantic's JSON parser
# refuses it as malformed, which would hide the real fault from the caller.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# U+0000 can only arrive as a \u0000 escape (an odd run of backslashes before it: an even run
# is escaped backslashes and then plain text). PostgreSQL's text cannot hold it, and no invoice
# field has a use for it: refused on every store alike, rather than a crash on one of them.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
MAX_KEY = 255


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def parse_invoice(body: bytes) -> InvoiceCreate:
    """The request body as an `InvoiceCreate`; Problem (400/422) if it is not one."""
    if b"\\u0000" in body and _NUL_ESCAPE.search(body):
        raise Problem(
            "invalid_request",
            "the body contains a NUL character (U+0000), which no invoice field may hold",
            errors=[{"loc": [], "msg": "NUL character (U+0000)", "code": "invalid_text"}],
        )
    try:
        return InvoiceCreate.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors) and _SURROGATE_ESCAPE.search(body):
            raise Problem(
                "invalid_request",
                "the body contains an unpaired surrogate (invalid text)",
                errors=[{"loc": [], "msg": "unpaired UTF-16 surrogate", "code": "invalid_text"}],
            ) from None
        problem = to_problem(exc)
        assert problem is not None
        raise problem from None


async def accept_invoice(
    state: Any, seller: Seller, create: InvoiceCreate, key: str | None
) -> tuple[int, dict[str, Any]]:
    """Hand a parsed request to intake, count it, and say what to answer: 202 and the new
    invoice, or 200 and the existing one (shared with the FastAPI route)."""
    if create.callback_url is not None:
        # 403, not 422: the URL is well-formed (the schema checked that); the deployment's
        # outbound policy refuses its destination.
        try:
            create.callback_url = state.outbound.check_submission(create.callback_url)
        except OutboundRefused as exc:
            raise Problem(
                "callback_url_not_allowed",
                f"callback_url: {exc.detail}",
                errors=[{"loc": ["callback_url"], "msg": exc.detail, "code": exc.reason}],
            ) from None
    accepted = await intake.submit_invoice(
        state.database,
        seller,
        create.to_domain(),
        create.canonical(),
        now=state.clock(),
        idempotency_key=key,
        idempotency_ttl=state.idempotency_ttl,
    )
    state.metrics.accepted("accepted" if accepted.created else "existing")
    if accepted.created and state.intake_series is not None:
        state.intake_series.record(time.time(), seller.region)  # the early warning's intake
    return (202 if accepted.created else 200), accepted.document


class _Json(JSONResponse):
    """The same JSON as Starlette's (UTF-8, compact), encoded by pydantic-core's serialiser."""

    def render(self, content: Any) -> bytes:
        return to_json(content)


class IntakePath:
    """ASGI middleware: `POST /v1/invoices` here, every other request to the wrapped app."""

    path = PATH  # what `Observe` reports as the route template

    def __init__(self, app: ASGIApp, state: Any, on_problem: Callable[[Problem], None]) -> None:
        self.app = app
        self.state = state
        self.on_problem = on_problem

    @staticmethod
    def handles(scope: Scope) -> bool:
        """Whether this is a request for the intake path (`POST /v1/invoices`)."""
        return bool(scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.handles(scope):
            await self.app(scope, receive, send)
            return
        scope["route"] = self
        try:
            response: JSONResponse = await self._accept(scope, await _body(receive))
        except Exception as exc:
            problem = to_problem(exc)
            if problem is None:
                raise  # a bug: `Observe` answers 500 and logs it
            self.on_problem(problem)
            response = problem_response(problem, PATH)
        await response(scope, receive, send)

    async def _accept(self, scope: Scope, body: bytes) -> _Json:
        state = self.state
        client = scope.get("client")
        address = client[0] if client else None
        who = await authenticate(state, _header(scope, b"authorization") or "", address)
        seller = await admit_seller(state, who, address)
        key = _header(scope, b"idempotency-key")
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            raise Problem(
                "invalid_request",
                f"Idempotency-Key must be 1 to {MAX_KEY} characters",
                errors=[{"loc": ["header", "idempotency-key"], "msg": "bad length",
                         "code": "string_length"}],
            )  # fmt: skip
        code, document = await accept_invoice(state, seller, parse_invoice(body), key)
        return _Json(document, status_code=code)
