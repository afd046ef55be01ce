"""A minimal HTTP/1.1 server on asyncio.Protocol and httptools, for the sandbox platform.

Why not aiohttp: the sandbox must answer over 2,000 calls/s on one core while thousands wait on
injected latency, and aiohttp's per-request machinery took half of its CPU (measured with py-spy
and wrk: 2,500 calls/s ceiling). This layer does only what the sandbox needs: keep-alive,
Content-Length or chunked bodies (httptools decodes both), JSON responses, a hard body limit, and
direct control of the transport so faults can drop a connection or stop listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl

import httptools


class Dropped(Exception):
    """The connection was cut on purpose; no response is written."""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    transport: asyncio.Transport

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def drop(self) -> None:
        """Abort the connection without an answer (a reset, as the client sees it)."""
        self.transport.abort()
        raise Dropped


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False).encode(), headers or {})


Handler = Callable[[Request], Awaitable[Response]]
_REASONS = {s.value: s.phrase for s in HTTPStatus}


def _encode(response: Response, keep_alive: bool) -> bytes:
    head = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.headers.get('Content-Type', 'application/json')}",
        f"Content-Length: {len(response.body)}",
    ]
    head += [f"{k}: {v}" for k, v in response.headers.items() if k != "Content-Type"]
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body


class _Connection(asyncio.Protocol):
    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[tuple[Request, bool]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "upgrade_not_supported", "protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._fail(400, "malformed_http", "the request is not valid HTTP/1.1")

    def _fail(self, status: int, code: str, message: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            body = json.dumps({"code": code, "message": message}).encode()
            self.transport.write(_encode(Response(status, body), keep_alive=False))
            self.transport.close()

    # -- httptools callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length", "0")
        if length.isdigit() and int(length) > self.server.max_body:
            self._fail(413, "too_large", f"the body is over {self.server.max_body} bytes")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.server.max_body:
            self._fail(413, "too_large", f"the body is over {self.server.max_body} bytes")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        url = httptools.parse_url(self._url)
        query = url.query.decode("latin-1") if url.query else ""
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            path=url.path.decode("utf-8", errors="replace"),
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers=self._headers,
            body=b"".join(self._body),
            transport=self.transport,
        )
        self.queue.append((request, self.parser.should_keep_alive()))
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        # Requests on one connection are answered in order (HTTP/1.1 pipelining rules).
        while self.queue:
            request, keep_alive = self.queue.popleft()
            try:
                response = await self.server.handler(request)
            except Dropped:
                self.queue.clear()
                return
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(_encode(response, keep_alive))
            if not keep_alive:
                self.transport.close()
                return


class Http1Server:
    """Listen on host:port and answer each request with `handler`."""

    def __init__(self, handler: Handler, max_body: int) -> None:
        self.handler = handler
        self.max_body = max_body
        self.connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=4096, reuse_address=True
        )
        self._server = server
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    @property
    def listening(self) -> bool:
        return self._server is not None

    def stop_listening(self) -> None:
        """Close the listening socket: new connections are refused; open ones stay."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def close(self) -> None:
        self.stop_listening()
        for connection in list(self.connections):
            if connection.worker is not None:
                connection.worker.cancel()
            if connection.transport is not None:
                connection.transport.close()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
