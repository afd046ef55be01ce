"""`NuonuoPlatform`: a `TaxPlatform` over Nuonuo's open API for one seller's account.

Every call is `POST {url}` with the API name in the `method` header, the seller's `accessToken`
and tax number (`userTax`), and a fresh signed envelope in the query string
(`kaipiao.platform.nuonuo.signing`). Issuance is asynchronous: a successful submission is
`Pending`, and `query` (by our order number, which is our serial) tells when it is issued.

Which transport failures are ambiguous follows `kaipiao.platform.http`: certainly not sent →
Unavailable; sent without a usable answer → Ambiguous (the engine queries before resending, with
the same order number, as the provider's own clients do). A duplicate order number means
"already submitted": Ambiguous too, so the engine queries it. What each envelope code means is in
`kaipiao.platform.nuonuo.codes`.

Red-letter (数电 cannot be voided): `issue_red` files the 红字确认单 under our red serial
(`saveInvoiceRedConfirm`; a duplicate means it was filed before: look it up), and once the form is
confirmed issues the red invoice (`fastInvoiceRed`, order number = our red serial). An unconfirmed
form answers Pending; the engine's later query finds no red invoice yet and, after the settle
time, calls `issue_red` again, which finds the same form: nothing is filed twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from kaipiao.clock import utcnow
from kaipiao.platform.downloads import FileDownloader
from kaipiao.platform.http import NOT_SENT, Answer, HttpSettings, retry_after_of
from kaipiao.platform.nuonuo import body as bodies
from kaipiao.platform.nuonuo.codes import STATUS, CodeTable, InvoiceState, Meaning, Methods
from kaipiao.platform.nuonuo.signing import Envelope, signature
from kaipiao.platform.outcomes import (
    Ambiguous,
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
    ListOutcome,
    PlatformInvoice,
    RedRequest,
)

PRODUCTION_URL = "https://sdk.nuonuo.com/open/v1/services"
SANDBOX_URL = "https://sandbox.nuonuocs.cn/open/v1/services"
# The 红字确认单 states that let the red invoice be issued (confirmed by the buyer, or needing no
# confirmation). Unverified against the official documentation: configurable.
DEFAULT_CONFIRMED = frozenset({"01", "04"})


@dataclass(frozen=True, slots=True)
class NuonuoAccount:
    """One seller's credentials. `app_secret` and `access_token` are secrets: never log them."""

    app_key: str
    app_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    tax_num: str


@dataclass(frozen=True, slots=True)
class NuonuoConfig:
    url: str = PRODUCTION_URL
    methods: Methods = field(default_factory=Methods)
    codes: CodeTable = field(default_factory=CodeTable)
    confirmed_states: frozenset[str] = DEFAULT_CONFIRMED
    clerk: str = "kaipiao"
    callback_url: str | None = None
    poll_after_s: float = 2.0


@dataclass(frozen=True, slots=True)
class _Reply:
    code: str
    describe: str
    result: Any


class NuonuoPlatform:
    """A `TaxPlatform` for one Nuonuo account; the session opens on first use."""

    def __init__(
        self,
        account: NuonuoAccount,
        config: NuonuoConfig | None = None,
        settings: HttpSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        downloader: FileDownloader | None = None,
    ) -> None:
        self.account = account
        self.downloader = downloader
        self.config = config or NuonuoConfig()
        self.settings = settings or HttpSettings()
        self.clock = clock
        self._url = URL(self.config.url)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"NuonuoPlatform({self.config.url}, app {self.account.app_key})"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self.settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=s.connect_timeout_s + s.pool_timeout_s,
                    sock_connect=s.connect_timeout_s, sock_read=s.read_timeout_s,
                ),
            )  # fmt: skip
        return self._session

    async def aclose(self) -> None:
        if self.downloader is not None:
            await self.downloader.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def signed(self, method: str, body: dict[str, Any]) -> tuple[dict[str, str], dict[str, str],
                                                                  bytes]:  # fmt: skip
        """Query parameters, headers and body bytes of one call (public for tests)."""
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        a = self.account
        envelope = Envelope.fresh(time.time())
        headers = {
            "X-Nuonuo-Sign": signature(a.app_secret, a.app_key, envelope.senid, envelope.nonce,
                                       envelope.timestamp, text),
            "accessToken": a.access_token,
            "userTax": a.tax_num,
            "method": method,
            "Content-Type": "application/json",
        }  # fmt: skip
        return envelope.params(a.app_key), headers, text.encode()

    async def _call(self, method: str, body: dict[str, Any]) -> Answer:
        params, headers, data = self.signed(method, body)
        async with self._client().post(
            self._url, params=params, headers=headers, data=data
        ) as response:
            raw = await response.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return Answer(response.status, response.headers,
                      parsed if isinstance(parsed, dict) else None)  # fmt: skip

    @staticmethod
    def _reply(answer: Answer) -> _Reply | None:
        data = answer.data
        if answer.status != 200 or data is None or not isinstance(data.get("code"), str):
            return None
        return _Reply(data["code"], str(data.get("describe", "")), data.get("result"))

    @staticmethod
    def _http_outcome(answer: Answer) -> Throttled | Unavailable | Ambiguous:
        """What an answer without a readable envelope means for a submission."""
        if answer.status == 429:
            return Throttled(retry_after_of(answer))
        if answer.status == 503:
            return Unavailable("Nuonuo answered 503", retry_after_of(answer))
        return Ambiguous(f"unexpected answer {answer.status}")

    async def _send(self, method: str, body: dict[str, Any]) -> IssueOutcome | _Reply:
        """A mutating call: its envelope, whatever its code, or the transport's outcome."""
        try:
            answer = await self._call(method, body)
        except NOT_SENT as exc:
            return Unavailable(f"not sent: {type(exc).__name__}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Ambiguous(f"no answer: {type(exc).__name__}")
        reply = self._reply(answer)
        return self._http_outcome(answer) if reply is None else reply

    async def _submit(self, method: str, body: dict[str, Any]) -> IssueOutcome | _Reply:
        """A mutating call: its reply when the envelope says OK, else the outcome."""
        sent = await self._send(method, body)
        return self._meaning(sent) if isinstance(sent, _Reply) else sent

    def _meaning(self, reply: _Reply) -> IssueOutcome | _Reply:
        meaning = self.config.codes.meaning(reply.code)
        if meaning is Meaning.OK:
            return reply
        if meaning is Meaning.DUPLICATE:
            return Ambiguous(f"already submitted ({reply.code}): query it")
        if meaning is Meaning.AUTH:
            return Unavailable(f"Nuonuo refused the credentials ({reply.code}): check the seller's "
                               "app key, secret and token")  # fmt: skip
        if meaning is Meaning.RETRY:
            return Unavailable(f"Nuonuo is busy ({reply.code})")
        return Rejected(f"nuonuo_{reply.code}", reply.describe)

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        body = bodies.billing_body(invoice, now=self.clock(), clerk=self.config.clerk,
                                   callback_url=self.config.callback_url)  # fmt: skip
        outcome = await self._submit(self.config.methods.issue, body)
        if isinstance(outcome, _Reply):
            return Pending(poll_after_s=self.config.poll_after_s)
        return outcome

    async def query(
        self, serial_no: str, *, seller_region: str | None = None,
        seller_tax_id: str | None = None,
    ) -> QueryOutcome:  # fmt: skip
        try:
            answer = await self._call(self.config.methods.query, bodies.query_body(serial_no))
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Unavailable(f"query failed: {type(exc).__name__}")
        reply = self._reply(answer)
        if reply is None:
            if answer.status == 429:
                return Throttled(retry_after_of(answer))
            return Unavailable(f"unexpected query answer {answer.status}")
        meaning = self.config.codes.meaning(reply.code)
        if meaning is not Meaning.OK:
            return Unavailable(f"query refused ({reply.code}): {reply.describe}")
        items = reply.result if isinstance(reply.result, list) else []
        return self._query_outcome([i for i in items if isinstance(i, dict)])

    def _query_outcome(self, items: list[dict[str, Any]]) -> QueryOutcome:
        """The answer for one order number. Several entries happen only if the provider issued it
        twice; the issued one wins, then a pending one."""
        if not items:
            return NotFound()
        states = [(STATUS.get(str(item.get("status"))), item) for item in items]
        for entry, item in states:
            if entry is not None and entry.state is InvoiceState.ISSUED:
                number = bodies.invoice_number(item)
                if number:
                    return Issued(number, bodies.invoice_time(item, self.clock()))
        if any(e is not None and e.state is InvoiceState.PENDING for e, _ in states):
            return Pending(poll_after_s=self.config.poll_after_s)
        entry, item = states[0]
        if entry is None:
            return Unavailable(f"unknown Nuonuo status {item.get('status')!r}")
        reason = str(item.get("failCause") or entry.label)
        return Rejected(f"nuonuo_status_{item.get('status')}", reason)

    async def issue_red(self, request: RedRequest) -> IssueOutcome:
        m = self.config.methods
        filed = await self._send(m.red_confirm, bodies.red_confirm_body(request))
        if isinstance(filed, _Reply) and self.config.codes.meaning(filed.code) is Meaning.DUPLICATE:
            # Filed before (a retry after a lost answer): look the form up instead.
            filed = await self._send(m.red_confirm_query, bodies.red_confirm_query_body(request))
        if isinstance(filed, _Reply):
            filed = self._meaning(filed)
        if not isinstance(filed, _Reply):
            return filed
        form = filed.result[0] if isinstance(filed.result, list) and filed.result else filed.result
        if not isinstance(form, dict) or not form.get("billNo"):
            return Ambiguous("the confirmation form came back without a billNo")
        if str(form.get("billStatus")) not in self.config.confirmed_states:
            return Pending(poll_after_s=self.config.poll_after_s)
        bill_uuid = form.get("billUuid")
        issued = await self._submit(m.fast_red, bodies.fast_red_body(
            request, str(form["billNo"]), str(bill_uuid) if bill_uuid else None))  # fmt: skip
        if isinstance(issued, _Reply):
            return Pending(poll_after_s=self.config.poll_after_s)
        return issued

    async def fetch_files(
        self, invoice_number: str, *, serial_no: str, seller_tax_id: str,
        seller_region: str | None = None,
    ) -> FilesOutcome:  # fmt: skip
        """The query result's `pdfUrl` and `xmlUrl`, downloaded through the file downloader
        (outbound policy, host allowlist, size cap, timeout: `platform/downloads.py`)."""
        if self.downloader is None:
            return FilesRefused("no file downloads are configured for Nuonuo")
        try:
            answer = await self._call(self.config.methods.query, bodies.query_body(serial_no))
        except (TimeoutError, aiohttp.ClientError) as exc:
            return Unavailable(f"query failed: {type(exc).__name__}")
        reply = self._reply(answer)
        if reply is None or self.config.codes.meaning(reply.code) is not Meaning.OK:
            return Unavailable(f"unexpected query answer {answer.status}")
        items = reply.result if isinstance(reply.result, list) else []
        item = next((i for i in items if isinstance(i, dict)
                     and bodies.invoice_number(i) == invoice_number), None)  # fmt: skip
        if item is None:
            return NotFound()
        files = []
        for kind in FILE_KINDS:
            url = item.get(f"{kind}Url")
            if not isinstance(url, str) or not url:
                return NotFound()  # not made yet
            got = await self.downloader.get(url)
            if not isinstance(got, bytes):
                return got
            files.append(InvoiceFile(kind, got))
        return InvoiceFiles(tuple(files))

    async def list_issued(
        self, seller_tax_id: str, issued_from: datetime, issued_to: datetime, page: int = 1
    ) -> ListOutcome:
        """Nuonuo's open API as read has no listing by date: reconciliation checks invoices one
        by one through `query` instead."""
        return Unavailable("listing is not part of the Nuonuo adapter")
