"""RFC 9457 problem details: every error the API returns, with a stable `code`.

The code → HTTP status table below is the one place where statuses are decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kaipiao.domain.errors import DomainError, InvalidInvoice
from kaipiao.services.errors import ServiceError
from kaipiao.store.database import STORE_DOWN, is_store_down

log = logging.getLogger("kaipiao.api")
MEDIA_TYPE = "application/problem+json"

STATUS: dict[str, int] = {
    "malformed_json": 400,
    "invalid_cursor": 400,
    "invalid_text": 400,
    "unauthorized": 401,
    "network_not_allowed": 403,
    "forbidden": 403,
    "not_found": 404,
    "seller_not_found": 404,
    "key_not_found": 404,
    "method_not_allowed": 405,
    "order_conflict": 409,
    "idempotency_key_reused": 409,
    "request_in_progress": 409,
    "already_issued": 409,
    "not_cancellable": 409,
    "not_issued": 409,
    "not_reversible": 409,
    "already_reversed": 409,
    "order_already_invoiced": 409,
    "exceeds_reversible": 409,
    "invalid_reason": 422,
    "invalid_reverse_line": 422,
    "callback_url_not_allowed": 403,
    "invalid_overlap": 422,
    "request_timeout": 408,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "auth_rate_limited": 429,
    "internal_error": 500,
    "ledger_broken": 500,
    "no_checkpoint": 503,
    "store_unavailable": 503,
    "shutting_down": 503,
}
TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.status = status or STATUS.get(code, 422)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{problem.code}",
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "code": problem.code,
        "detail": problem.detail,
    }
    if instance:
        body["instance"] = instance
    if problem.errors is not None:
        body["errors"] = problem.errors
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=MEDIA_TYPE
    )


def from_domain(error: DomainError) -> Problem:
    if isinstance(error, InvalidInvoice):
        errors = [{"loc": list(p.loc), "msg": p.msg, "code": p.code} for p in error.problems]
        return Problem(error.code, error.message, status=422, errors=errors)
    return Problem(error.code, error.message, status=STATUS.get(error.code, 422))


def from_validation(items: Sequence[Any]) -> Problem:
    """A problem from pydantic's error list (FastAPI's or our own parse of the body)."""
    errors: list[dict[str, Any]] = []
    code = "invalid_request"
    for item in items:
        kind = item.get("type", "")
        if kind == "json_invalid":
            return Problem("malformed_json", "the request body is not valid JSON", status=400)
        loc = [p for p in item.get("loc", ()) if p != "body"]
        if kind == "extra_forbidden" and code == "invalid_request":
            code = "unknown_field"
        if kind == "invalid_amount" and code == "invalid_request":
            code = "invalid_amount"  # the decimal grammar, as the domain's own amount checks
        errors.append({"loc": loc, "msg": item.get("msg", ""), "code": kind})
    detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors)
    return Problem(code, detail or "invalid request", status=422, errors=errors)


def to_problem(exc: BaseException) -> Problem | None:
    """The problem document for an exception, or None for a bug (answered 500 and logged)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, DomainError):
        return from_domain(exc)
    if isinstance(exc, ServiceError):
        return Problem(exc.code, exc.message)
    if isinstance(exc, RequestValidationError):
        return from_validation(exc.errors())
    if isinstance(exc, ValidationError):
        return from_validation(exc.errors(include_url=False))
    if isinstance(exc, StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # 405 carries `Allow` (RFC 9110 §15.5.6): Starlette puts it on the exception.
        return Problem(code, str(exc.detail), status=exc.status_code,
                       headers=dict(exc.headers or {}))  # fmt: skip
    if is_store_down(exc):
        # The database (or the network to it) is down or restarting: a retryable 503.
        log.warning("store unavailable: %s", exc)
        return Problem(
            "store_unavailable", "the database is unavailable; retry shortly",
            headers={"Retry-After": "2"},
        )  # fmt: skip
    return None


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install(app: FastAPI, on_problem: Callable[[Problem], None]) -> None:
    """Register the handlers that turn every expected error into a problem document."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        problem = to_problem(exc)
        if problem is None:
            raise exc
        if problem.status == 405:
            problem.headers["Allow"] = _allowed_methods(app, request)
        on_problem(problem)
        return problem_response(problem, request.url.path)

    for kind in (Problem, DomainError, ServiceError, RequestValidationError,
                 StarletteHTTPException, *STORE_DOWN):  # fmt: skip
        app.add_exception_handler(kind, handle)
