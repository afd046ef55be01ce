"""`HttpPlatform`: the sandbox platform protocol over HTTP (aiohttp, pooled, with timeouts).

Why aiohttp and not httpx: at 240 calls in flight (300/s at 800 ms), httpcore's pool bookkeeping
scaled with the number of connections and took two thirds of a worker's CPU (py-spy).

Which failures are ambiguous is decided here, once:

- the request certainly did not reach the platform, or the platform says it did nothing:
  connection refused, connect timeout (which includes waiting for a pooled connection), 503,
  429, 400 → Unavailable, Throttled, Rejected. Safe to resend.
- the request may have been processed: read timeout, connection reset or closed after sending,
  500/502/504, an unreadable 2xx → Ambiguous. The engine must query by serial before resending.

Queries and listings change nothing, so any transport failure there is just Unavailable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from kaipiao.platform.outcomes import (
    Ambiguous,
    Duplicate,
    Issued,
    IssueOutcome,
    NotFound,
    Pending,
    QueryOutcome,
    Rejected,
    Throttled,
    Unavailable,
)
from kaipiao.platform.protocol import (
    FILE_KINDS,
    FilesOutcome,
    FilesRefused,
    InvoiceFile,
    InvoiceFiles,
    ListedPage,
    ListOutcome,
    PlatformInvoice,
    RedRequest,
)
from kaipiao.platform.wire import (
    decode_listed,
    encode_invoice,
    encode_red,
    format_time,
    parse_time,
)

MAX_FILE_BYTES = 20 * 1024 * 1024  # an invoice's PDF is tens of KiB; more is not an invoice

# Failures that prove the request was not sent.
NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Timeouts (seconds) and pool size of one platform client."""

    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    pool_timeout_s: float = 5.0
    max_connections: int = 200


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # the response's own (case-insensitive) headers, not a copy
    data: dict[str, Any] | None


def retry_after_of(response: Answer) -> float:
    millis = response.headers.get("X-Retry-After-Ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


_JSON_HEADERS = {"Content-Type": "application/json"}


class HttpPlatform:
    """A `TaxPlatform` speaking the sandbox protocol to `base_url`. The session is created on
    first use, inside the running event loop."""

    def __init__(self, base_url: str, settings: HttpSettings | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings or HttpSettings()
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self.settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    # aiohttp's connect timeout includes waiting for a pooled connection.
                    connect=s.connect_timeout_s + s.pool_timeout_s,
                    sock_connect=s.connect_timeout_s,
                    sock_read=s.read_timeout_s,
                ),
                json_serialize=lambda data: json.dumps(data, ensure_ascii=False),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, *, body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:  # fmt: skip
        """One request; transport failures propagate as aiohttp/asyncio exceptions.

        URLs are parsed once per path and bodies sent as ready bytes (measured: URL parsing and
        aiohttp's JSON payload wrapper were a tenth of a worker's HTTP time)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        async with self._client().request(
            method, url, data=data, params=params, headers=_JSON_HEADERS if data else None
        ) as response:
            raw = await response.read()
            return Answer(response.status, response.headers, _json(raw))

    async def _send_mutation(self, path: str, body: dict[str, Any]) -> IssueOutcome:
        try:
            answer = await self._call("POST", path, body=body)
        except NOT_SENT as exc:
            return Unavailable(f"not sent: {type(exc).__name__}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Ambiguous(f"no answer: {type(exc).__name__}")
        return self._issue_outcome(answer)

    @staticmethod
    def _issue_outcome(answer: Answer) -> IssueOutcome:
        status = answer.status
        data = answer.data
        if status == 200 and data and data.get("invoice_number"):
            return Issued(data["invoice_number"], parse_time(data["issued_at"]))
        if status == 202 and data is not None:
            return Pending(poll_after_s=data.get("poll_after_s"))
        if status == 409 and data and data.get("code") == "duplicate_serial":
            issued_at = data.get("issued_at")
            return Duplicate(data["invoice_number"], parse_time(issued_at) if issued_at else None)
        if status == 429:
            return Throttled(retry_after_of(answer))
        if status == 503:
            return Unavailable("platform answered 503", retry_after_of(answer))
        if 400 <= status < 500 and data and isinstance(data.get("code"), str):
            return Rejected(data["code"], str(data.get("message", "")))
        return Ambiguous(f"unexpected answer {status}")

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        return await self._send_mutation("/v1/invoices", encode_invoice(invoice))

    async def issue_red(self, request: RedRequest) -> IssueOutcome:
        return await self._send_mutation("/v1/red-invoices", encode_red(request))

    async def query(
        self, serial_no: str, *, seller_region: str | None = None,
        seller_tax_id: str | None = None,
    ) -> QueryOutcome:  # fmt: skip
        params = {"seller_region": seller_region} if seller_region else None
        try:
            answer = await self._call("GET", f"/v1/invoices/{serial_no}", params=params)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Unavailable(f"query failed: {type(exc).__name__}")
        data = answer.data
        if answer.status == 404 and data and data.get("code") == "not_found":
            return NotFound()
        if answer.status == 429:
            return Throttled(retry_after_of(answer))
        if answer.status == 200 and data is not None:
            state = data.get("status")
            if state == "issued":
                return Issued(data["invoice_number"], parse_time(data["issued_at"]))
            if state == "pending":
                return Pending(poll_after_s=data.get("poll_after_s"))
            if state == "failed":
                return Rejected(str(data.get("code")), str(data.get("message", "")))
        return Unavailable(f"unexpected query answer {answer.status}")

    async def list_issued(
        self, seller_tax_id: str, issued_from: datetime, issued_to: datetime, page: int = 1
    ) -> ListOutcome:
        params = {
            "seller_tax_id": seller_tax_id,
            "issued_from": format_time(issued_from),
            "issued_to": format_time(issued_to),
            "page": str(page),
        }
        try:
            answer = await self._call("GET", "/v1/invoices", params=params)
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Unavailable(f"listing failed: {type(exc).__name__}")
        if answer.status == 429:
            return Throttled(retry_after_of(answer))
        data = answer.data
        if answer.status != 200 or data is None:
            return Unavailable(f"unexpected listing answer {answer.status}")
        return ListedPage(
            tuple(decode_listed(item) for item in data["invoices"]), data.get("next_page")
        )

    async def fetch_files(
        self, invoice_number: str, *, serial_no: str, seller_tax_id: str,
        seller_region: str | None = None,
    ) -> FilesOutcome:  # fmt: skip
        """GET {base}/v1/files/{number}.pdf and .xml (not cached per path: one per invoice)."""
        files = []
        for kind in FILE_KINDS:
            url = URL(f"{self.base_url}/v1/files/{invoice_number}.{kind}")
            try:
                async with self._client().get(url) as response:
                    if response.status == 404:
                        return NotFound()
                    if response.status == 429:
                        await response.read()
                        return Throttled(1.0)
                    if response.status != 200:
                        return Unavailable(f"unexpected files answer {response.status}")
                    if (response.content_length or 0) > MAX_FILE_BYTES:
                        return FilesRefused(f"the {kind} file is over {MAX_FILE_BYTES} bytes")
                    content = await response.content.read(MAX_FILE_BYTES + 1)
            except (TimeoutError, aiohttp.ClientError) as exc:
                return Unavailable(f"files failed: {type(exc).__name__}")
            if len(content) > MAX_FILE_BYTES:
                return FilesRefused(f"the {kind} file is over {MAX_FILE_BYTES} bytes")
            files.append(InvoiceFile(kind, content))
        return InvoiceFiles(tuple(files))
