"""The HTTP/1.1 connection protocol `kaipiao serve` runs: uvicorn's httptools protocol with a
header read timeout.

uvicorn closes a keep-alive connection that stays idle, but sets no limit on how long a client
may take to send a request's headers, nor on a fresh connection that sends nothing: a few
hundred slow connections (slowloris) held the server's connections indefinitely. Here a timer
runs from the connection's first moment (and from the first byte of each later request) until
the headers are complete; when it fires, the connection is closed. The body's time is limited
separately, per request, by `kaipiao.api.guards.BodyGuard` (408).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_timeout(cls, seconds: float) -> type[GuardedHttpToolsProtocol]:
        """This protocol with its header timeout set (uvicorn takes a class)."""
        return type(cls.__name__, (cls,), {"header_timeout_s": seconds})

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
