"""`HttpPlatform`: the sandbox platform protocol over HTTP (httpx, pooled, with timeouts).

Which failures are ambiguous is decided here, once:

- the request certainly did not reach the platform, or the platform says it did nothing:
  connection refused / connect timeout / pool full, 503, 429, 400 → Unavailable, Throttled,
  Rejected. Safe to resend.
- the request may have been processed: read timeout, connection reset or closed after sending,
  500/502/504, an unreadable 2xx → Ambiguous. The engine must query by serial before resending.

Queries and listings change nothing, so any transport failure there is just Unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

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
from kaipiao.platform.protocol import ListedPage, ListOutcome, PlatformInvoice, RedRequest
from kaipiao.platform.wire import (
    decode_listed,
    encode_invoice,
    encode_red,
    format_time,
    parse_time,
)

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Timeouts (seconds) and pool size of one platform client."""

    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    pool_timeout_s: float = 5.0
    max_connections: int = 200


def _retry_after(response: httpx.Response) -> float:
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


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class HttpPlatform:
    """A `TaxPlatform` speaking the sandbox protocol to `base_url`."""

    def __init__(
        self,
        base_url: str,
        settings: HttpSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        s = self.settings
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(
                connect=s.connect_timeout_s,
                read=s.read_timeout_s,
                write=s.read_timeout_s,
                pool=s.pool_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=s.max_connections, max_keepalive_connections=s.max_connections
            ),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _send_mutation(self, path: str, body: dict[str, Any]) -> IssueOutcome:
        try:
            response = await self._client.post(path, json=body)
        except _NOT_SENT as exc:
            return Unavailable(f"not sent: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Ambiguous(f"no answer: {type(exc).__name__}")
        return self._issue_outcome(response)

    @staticmethod
    def _issue_outcome(response: httpx.Response) -> IssueOutcome:
        status = response.status_code
        data = _json(response)
        if status == 200 and data and data.get("invoice_number"):
            return Issued(data["invoice_number"], parse_time(data["issued_at"]))
        if status == 202 and data is not None:
            return Pending(poll_after_s=data.get("poll_after_s"))
        if status == 409 and data and data.get("code") == "duplicate_serial":
            issued_at = data.get("issued_at")
            return Duplicate(data["invoice_number"], parse_time(issued_at) if issued_at else None)
        if status == 429:
            return Throttled(_retry_after(response))
        if status == 503:
            return Unavailable("platform answered 503", _retry_after(response))
        if 400 <= status < 500 and data and isinstance(data.get("code"), str):
            return Rejected(data["code"], str(data.get("message", "")))
        return Ambiguous(f"unexpected answer {status}")

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        return await self._send_mutation("/v1/invoices", encode_invoice(invoice))

    async def issue_red(self, request: RedRequest) -> IssueOutcome:
        return await self._send_mutation("/v1/red-invoices", encode_red(request))

    async def query(self, serial_no: str, *, seller_region: str | None = None) -> QueryOutcome:
        params = {"seller_region": seller_region} if seller_region else None
        try:
            response = await self._client.get(f"/v1/invoices/{serial_no}", params=params)
        except httpx.HTTPError as exc:
            return Unavailable(f"query failed: {type(exc).__name__}")
        status = response.status_code
        data = _json(response)
        if status == 404 and data and data.get("code") == "not_found":
            return NotFound()
        if status == 429:
            return Throttled(_retry_after(response))
        if status == 200 and data is not None:
            state = data.get("status")
            if state == "issued":
                return Issued(data["invoice_number"], parse_time(data["issued_at"]))
            if state == "pending":
                return Pending(poll_after_s=data.get("poll_after_s"))
            if state == "failed":
                return Rejected(str(data.get("code")), str(data.get("message", "")))
        return Unavailable(f"unexpected query answer {status}")

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
            response = await self._client.get("/v1/invoices", params=params)
        except httpx.HTTPError as exc:
            return Unavailable(f"listing failed: {type(exc).__name__}")
        if response.status_code == 429:
            return Throttled(_retry_after(response))
        data = _json(response)
        if response.status_code != 200 or data is None:
            return Unavailable(f"unexpected listing answer {response.status_code}")
        return ListedPage(
            tuple(decode_listed(item) for item in data["invoices"]), data.get("next_page")
        )
