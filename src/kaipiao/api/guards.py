"""Guard rails in front of the routes: path and query text, body size, type and time, caller
networks, and the outermost layer that times every request and answers what nothing else did.

The body guard is plain ASGI so an oversized body is refused while it streams in, before any of
it is parsed. (Per-seller rate limits are in `kaipiao.store.rate_limit`.) Refusals are counted
by code (see `kaipiao.api.app`), so an operator can tell an
attack from a rule that blocks good traffic.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import ClientDisconnect

from kaipiao.observability import logs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BODY_METHODS = {b"POST", b"PUT", b"PATCH"}


class ClientGone(Exception):
    """The client went away before its request was read: nobody to answer, and no fault of
    ours or of the store (counted as 499, never as a 5xx)."""


def _problem_body(status: int, code: str, detail: str) -> bytes:
    return json.dumps(
        {"type": f"/problems/{code}", "title": detail, "status": status, "code": code,
         "detail": detail}
    ).encode()  # fmt: skip


def text_problem(scope: Scope) -> str | None:
    """Why the request's path or query cannot be accepted as text, or None: a NUL (PostgreSQL's
    text cannot hold one), another control character, or percent-escapes that are not UTF-8.
    Checked before any route, so no store ever sees such a value."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    for part, name in ((raw_path, "path"), (scope.get("query_string", b""), "query")):
        try:
            text = unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return f"the {name} is not valid UTF-8"
        if _CONTROL.search(text):
            return f"the {name} contains a control character (such as NUL)"
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BodyGuard:
    """In front of every route: refuse a path or query that is not valid text (400), a body
    over `max_bytes` (413, whether announced by Content-Length or sent chunked), a non-JSON
    body on write methods (415), and a body that takes longer than `body_timeout_s` (408).

    The body is read here, whole, before the route sees it: so a chunked body over the limit is
    a 413 on every route, and a client that writes its whole body before reading the answer
    (urllib, http.client) gets the 413 rather than a reset: up to `drain_bytes` of an oversized
    body are read and dropped first. A client that sent `Expect: 100-continue` is answered at
    once, before it sends the body."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        on_refuse: Callable[[str], None],
        body_timeout_s: float = 30.0,
        drain_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refuse = on_refuse
        self.body_timeout_s = body_timeout_s
        self.drain_bytes = drain_bytes

    async def _refuse(self, send: Send, status: int, code: str, detail: str,
                      close: bool = False) -> None:  # fmt: skip
        self.on_refuse(code)
        body = _problem_body(status, code, detail)
        headers = [(b"content-type", b"application/problem+json"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _drain(self, receive: Receive, seen: int, deadline: float) -> None:
        """Read and drop what is left of a refused body, up to `drain_bytes` in all."""
        more = True
        while more and seen <= self.drain_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), left)
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            more = message.get("more_body", False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = text_problem(scope)
        if problem is not None:
            await self._refuse(send, 400, "invalid_text", problem)
            return
        if scope["method"].encode() not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        too_large = f"body over {self.max_bytes} bytes"
        deadline = time.monotonic() + self.body_timeout_s
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            expects = headers.get(b"expect", b"").lower() == b"100-continue"
            if not expects and int(length) <= self.drain_bytes:
                await self._drain(receive, 0, deadline)
            await self._refuse(send, 413, "payload_too_large", too_large, close=True)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = length not in (None, b"0") or b"transfer-encoding" in headers
        # The console's pages post plain HTML forms (kaipiao.api.console), nothing else does.
        form = content_type == b"application/x-www-form-urlencoded" and scope["path"].startswith(
            "/console/"
        )
        if has_body and not (
            content_type == b"application/json" or content_type.endswith(b"+json") or form
        ):
            await self._refuse(send, 415, "unsupported_media_type", "send application/json")
            return
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                await self._refuse(send, 408, "request_timeout",
                                   f"the body did not arrive within {self.body_timeout_s:g} s",
                                   close=True)  # fmt: skip
                return
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            seen += len(chunk)
            more = message.get("more_body", False)
            if seen > self.max_bytes:
                if more:
                    await self._drain(receive, seen, deadline)
                await self._refuse(send, 413, "payload_too_large", too_large, close=True)
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def network_allowed(address: str | None, allowed: tuple[str, ...]) -> bool:
    """True if no networks are configured, or `address` lies in one of them."""
    if not allowed:
        return True
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in allowed)


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-Id if it is a sane token, else a fresh one."""
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            text = str(value.decode("latin-1"))
            if _REQUEST_ID.fullmatch(text):
                return text
    return logs.new_request_id()


class Observe:
    """Time every request by route template, and answer anything unhandled with a 500 problem
    document (once, logged once), never a bare traceback."""

    def __init__(
        self,
        app: ASGIApp,
        on_done: Callable[[str, str, int, float], None],
        on_crash: Callable[[Scope, BaseException], bytes],
    ) -> None:
        self.app = app
        self.on_done = on_done
        self.on_crash = on_crash

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        response_started = False
        request_id = _request_id(scope)
        logs.clear()
        logs.bind(request_id=request_id)

        async def tracking_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]  # fmt: skip
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except (ClientGone, ClientDisconnect):
            # Nobody to answer; not a server error (and not "store unavailable").
            if not response_started:
                status = 499
        except Exception as exc:
            if response_started:
                raise
            body = self.on_crash(scope, exc)
            status = 500
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.on_done(template, scope["method"], status, time.perf_counter() - started)
