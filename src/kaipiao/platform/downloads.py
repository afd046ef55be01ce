"""Downloading an invoice's files from URLs a provider hands back (Nuonuo's `pdfUrl`, `xmlUrl`).

The URLs come from a third party's answer, so they are treated like a seller-steered
destination: through the outbound policy (`platform/outbound.py`: parsed and normalised, every
resolved address checked, connections only to checked addresses, no redirects), and further
limited to an allowlist of host names (`FileLimits.hosts`; empty allows none), a size cap read
as the body streams in (a `Content-Length` over the cap is refused before reading), and a total
timeout. A refusal is `FilesRefused` (asking again will not help); a transport failure or a 5xx
is `Unavailable` (retry later); a 404 is `NotFound` (the provider has not made the file yet).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from kaipiao.platform.outbound import OutboundPolicy, OutboundRefused
from kaipiao.platform.outcomes import NotFound, Unavailable
from kaipiao.platform.protocol import FilesRefused

CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FileLimits:
    hosts: frozenset[str] = frozenset()  # lower-case host names (or IP literals) files come from
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 30.0


class FileDownloader:
    """GET a file within `limits` through `policy`. One session, opened on first use."""

    def __init__(self, policy: OutboundPolicy, limits: FileLimits) -> None:
        self.policy = policy
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None

    async def get(self, url: str) -> bytes | FilesRefused | Unavailable | NotFound:
        try:
            target = self.policy.check_target(url)
        except OutboundRefused as exc:
            return FilesRefused(f"file URL refused: {exc.reason}")
        if target.host not in self.limits.hosts:
            return FilesRefused(f"file URL refused: host {target.host} is not allowed")
        if self._session is None:
            self._session = self.policy.session(self.limits.timeout_s)
        cap = self.limits.max_bytes
        try:
            async with self._session.get(target.url, allow_redirects=False) as response:
                if response.status == 404:
                    return NotFound()
                if response.status != 200:
                    return Unavailable(f"file download answered {response.status}")
                if (response.content_length or 0) > cap:
                    return FilesRefused(f"file is over {cap} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(CHUNK):
                    body += chunk
                    if len(body) > cap:
                        return FilesRefused(f"file is over {cap} bytes")
                return bytes(body)
        except OutboundRefused as exc:  # the resolver's check, at connection time
            return FilesRefused(f"file URL refused: {exc.reason}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Unavailable(f"file download failed: {type(exc).__name__}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
