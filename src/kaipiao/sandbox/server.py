"""The sandbox platform's HTTP server (on `sandbox.http1`): routes around `SandboxState`.

Routes (JSON; decimals as strings):
    POST /v1/invoices             issue         200 issued | 202 pending | 409 duplicate_serial
    GET  /v1/invoices/{serial}    query         200 {status: issued|pending|failed} | 404
    POST /v1/red-invoices         red-letter    200 | 202 | 409 | 400 original_not_found…
    GET  /v1/invoices?seller_tax_id=&issued_from=&issued_to=&page=   reconciliation listing
    GET|PUT /_sandbox/faults, GET /_sandbox/stats, POST /_sandbox/reset   controls
    GET /_sandbox/records?serial_no=S   the platform's record of one invoice (its lines)
    GET  /v1/files/{number}.pdf|.xml   an issued invoice's files (sandbox/invoice_pdf.py, _xml.py)

Faults apply in `sandbox/gate.py`'s order, on both fronts. A `refuse` outage closes the
listening socket itself, so new connections are refused at the TCP level, as an unreachable
platform's are. A `hang` outage (or a region in `down_regions`) holds calls without an answer;
when it ends, the held calls are processed, as a stalled platform catches up: a client that timed
out meanwhile finds its invoice issued.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from kaipiao.clock import utcnow
from kaipiao.platform.outcomes import (
    Duplicate,
    Issued,
    NotFound,
    Pending,
    QueryOutcome,
    Rejected,
)
from kaipiao.platform.protocol import MEDIA_TYPES, PlatformInvoice, RedRequest
from kaipiao.platform.wire import (
    WireError,
    decode_invoice,
    decode_red,
    encode_listed,
    format_time,
    parse_time,
)
from kaipiao.sandbox.faults import PROFILES, FaultConfigError, Faults, build_faults
from kaipiao.sandbox.gate import FaultGate, Outcome, problem
from kaipiao.sandbox.http1 import Dropped, Http1Server, Request, Response, json_response
from kaipiao.sandbox.nuonuo_front import PATH as NUONUO_PATH
from kaipiao.sandbox.nuonuo_front import NuonuoFront
from kaipiao.sandbox.state import SandboxState

log = logging.getLogger("kaipiao.sandbox")
MAX_BODY = 8 * 1024 * 1024
QUERY_PREFIX = "/v1/invoices/"
FILES_PREFIX = "/v1/files/"  # GET /v1/files/{invoice number}.{pdf|xml}
Handler = Callable[[Request], Awaitable[Response]]


class SandboxServer:
    """One sandbox platform listening on host:port (0 picks a free port)."""

    def __init__(
        self,
        state: SandboxState,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = utcnow,
        nuonuo_apps: dict[str, str] | None = None,
    ) -> None:
        self.state = state
        self.gate = FaultGate(state, clock)
        self.nuonuo = NuonuoFront(apps=dict(nuonuo_apps or {}))
        self.host = host
        self.port = port
        self.clock = clock
        self._http: Http1Server | None = None
        self._table: dict[tuple[str, str], Handler] = {}
        self._restore: asyncio.TimerHandle | None = None
        self._before_outage: Faults | None = None

    # -- routing -------------------------------------------------------------------------------
    def _routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/invoices"): self.issue,
            ("GET", "/v1/invoices"): self.list_issued,
            ("POST", "/v1/red-invoices"): self.issue_red,
            ("GET", "/_sandbox/faults"): self.get_faults,
            ("PUT", "/_sandbox/faults"): self.put_faults,
            ("GET", "/_sandbox/stats"): self.get_stats,
            ("GET", "/_sandbox/records"): self.get_record,
            ("POST", "/_sandbox/reset"): self.reset,
            ("POST", NUONUO_PATH): self.nuonuo_services,
        }

    async def _dispatch(self, request: Request) -> Response:
        path = request.path
        handler = self._table.get((request.method, path))
        if handler is None and request.method == "GET" and path.startswith(QUERY_PREFIX):
            handler = self.query
        if handler is None and request.method == "GET" and path.startswith(FILES_PREFIX):
            handler = self.get_file
        if handler is None:
            known = {p for _, p in self._table}
            if path in known or path.startswith(QUERY_PREFIX):
                return problem(405, "method_not_allowed", f"{request.method} is not allowed here")
            return problem(404, "not_found", f"no route {path}")
        try:
            return await handler(request)
        except Dropped:
            raise
        except Exception:
            log.exception("sandbox error on %s %s", request.method, path)
            return problem(500, "sandbox_error", "unexpected sandbox error")

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> int:
        """Start listening; returns the port. A start-time `refuse` outage begins at once."""
        self._table = self._routes()
        self._http = Http1Server(self._dispatch, MAX_BODY)
        await self._listen()
        self.nuonuo.base_url = self.url
        if self.state.faults.outage is not None:
            self._begin_outage(self.state.faults, PROFILES["normal"])
        return self.port

    async def _listen(self) -> None:
        assert self._http is not None
        if not self._http.listening:
            self.port = await self._http.listen(self.host, self.port)

    async def stop(self) -> None:
        if self._restore is not None:
            self._restore.cancel()
        self.gate.faults_changed()
        if self._http is not None:
            await self._http.close()
        self.state.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- faults --------------------------------------------------------------------------------
    def set_faults(self, faults: Faults) -> None:
        previous = self.state.faults
        self.state.faults = faults
        self.gate.faults_changed()
        if self._restore is not None and faults.outage is None:
            self._restore.cancel()
            self._restore = None
        if faults.outage is not None:
            self._begin_outage(faults, previous if previous.outage is None else None)
        elif self._http is not None and not self._http.listening:
            asyncio.get_running_loop().create_task(self._listen())

    def _begin_outage(self, faults: Faults, restore_to: Faults | None) -> None:
        if restore_to is not None:
            self._before_outage = restore_to
        if faults.outage == "refuse" and self._http is not None:
            self._http.stop_listening()
        if faults.outage_for_s > 0:
            if self._restore is not None:
                self._restore.cancel()
            self._restore = asyncio.get_running_loop().call_later(
                faults.outage_for_s, self._end_outage
            )

    def _end_outage(self) -> None:
        self._restore = None
        self.set_faults(self._before_outage or PROFILES["normal"])

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _body(request: Request) -> Any:
        if request.content_type != "application/json":
            raise WireError("unsupported_media_type", "send application/json")
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise WireError("malformed_json", "the body is not valid JSON") from None

    @staticmethod
    def _answer(serial_no: str, outcome: Outcome | QueryOutcome, *, query: bool) -> Response:
        if isinstance(outcome, Issued):
            return json_response(
                {
                    "serial_no": serial_no,
                    "status": "issued",
                    "invoice_number": outcome.invoice_number,
                    "issued_at": format_time(outcome.issued_at),
                }
            )
        if isinstance(outcome, Duplicate):
            return problem(
                409,
                "duplicate_serial",
                "this serial was issued before",
                invoice_number=outcome.invoice_number,
                issued_at=format_time(outcome.issued_at) if outcome.issued_at else None,
            )
        if isinstance(outcome, Pending):
            return json_response(
                {"serial_no": serial_no, "status": "pending", "poll_after_s": outcome.poll_after_s},
                status=200 if query else 202,
            )
        if isinstance(outcome, Rejected):
            if query:
                return json_response(
                    {
                        "serial_no": serial_no,
                        "status": "failed",
                        "code": outcome.code,
                        "message": outcome.message,
                    }
                )
            return problem(400, outcome.code, outcome.message)
        if isinstance(outcome, NotFound):
            return problem(404, "not_found", "no invoice under that serial")
        raise TypeError(f"unexpected outcome {outcome!r}")

    # -- routes --------------------------------------------------------------------------------
    async def _mutation(
        self,
        request: Request,
        endpoint: str,
        decode: Callable[[Any], PlatformInvoice | RedRequest],
        operation: Callable[[Any, datetime], Outcome],
    ) -> Response:
        """Issue or red-issue: decode (400/415 on bad input), then the call with its faults."""
        try:
            body = decode(self._body(request))
        except WireError as exc:
            self.state.calls[f"{endpoint}:bad_request"] += 1
            return problem(
                415 if exc.code == "unsupported_media_type" else 400, exc.code, exc.message
            )
        outcome, response = await self.gate.call(
            request, endpoint, body.seller_tax_id, body.seller_region,
            lambda now: operation(body, now), mutating=True,
        )  # fmt: skip
        return response or self._answer(body.serial_no, outcome, query=False)  # type: ignore[arg-type]

    async def issue(self, request: Request) -> Response:
        return await self._mutation(request, "issue", decode_invoice, self.state.issue)

    async def issue_red(self, request: Request) -> Response:
        return await self._mutation(request, "red", decode_red, self.state.issue_red)

    async def query(self, request: Request) -> Response:
        serial_no = request.path[len(QUERY_PREFIX) :]
        record = self.state.record_for(serial_no)
        region = request.query.get("seller_region") or (record.region if record else None)
        outcome, response = await self.gate.call(
            request, "query", None, region,
            lambda now: self.state.query(serial_no, now), mutating=False,
        )  # fmt: skip
        return response or self._answer(serial_no, outcome, query=True)  # type: ignore[arg-type]

    async def list_issued(self, request: Request) -> Response:
        params = request.query
        try:
            seller = params["seller_tax_id"]
            issued_from = parse_time(params["issued_from"])
            issued_to = parse_time(params["issued_to"])
            page = int(params.get("page", "1"))
            if page < 1:
                raise ValueError("page must be ≥ 1")
        except KeyError as exc:
            return problem(400, "invalid_request", f"missing query parameter {exc.args[0]}")
        except ValueError as exc:
            return problem(400, "invalid_request", str(exc))
        self.state.calls["list:ok"] += 1
        listed = self.state.list_issued(seller, issued_from, issued_to, page, self.clock())
        return json_response(
            {
                "invoices": [encode_listed(item) for item in listed.invoices],
                "page": page,
                "next_page": listed.next_page,
            }
        )

    async def get_file(self, request: Request) -> Response:
        """An issued invoice's PDF or XML (not behind the fault gate: files are static)."""
        number, _, kind = request.path[len(FILES_PREFIX) :].partition(".")
        if kind not in MEDIA_TYPES:
            return problem(404, "not_found", "ask for {number}.pdf or {number}.xml")
        made = self.state.files(number, self.clock())
        if made is None:
            return problem(404, "not_found", "no issued invoice has that number")
        self.state.calls["files:ok"] += 1
        return Response(200, made[kind], {"Content-Type": MEDIA_TYPES[kind]})

    async def nuonuo_services(self, request: Request) -> Response:
        return await self.nuonuo.handle(self.gate, request)

    async def get_faults(self, request: Request) -> Response:
        return json_response(self.state.faults.as_dict())

    async def put_faults(self, request: Request) -> Response:
        try:
            spec = self._body(request)
            if not isinstance(spec, dict):
                raise WireError("invalid_faults", "send a JSON object of knobs")
            faults = build_faults(spec, None if "profile" in spec else self.state.faults)
        except WireError as exc:
            return problem(400, exc.code, exc.message)
        except FaultConfigError as exc:
            return problem(400, "invalid_faults", str(exc))
        if faults.outage == "refuse" and faults.outage_for_s <= 0:
            return problem(400, "invalid_faults", "a refuse outage needs outage_for_s > 0")
        response = json_response(faults.as_dict())
        # Answer first: a refuse outage closes the listener this answer travels through.
        asyncio.get_running_loop().call_soon(self.set_faults, faults)
        return response

    async def get_stats(self, request: Request) -> Response:
        return json_response(self.state.stats(self.clock()))

    async def get_record(self, request: Request) -> Response:
        """The platform's own record of one serial (`?serial_no=`): lines, totals, status."""
        self.state.settle_all(self.clock())
        record = self.state.record_for(request.query.get("serial_no", ""))
        if record is None:
            return problem(404, "not_found", "no invoice under that serial")
        return json_response(record.to_json())

    async def reset(self, request: Request) -> Response:
        seed = request.query.get("seed")
        self.gate.reset()
        self.state.reset(int(seed) if seed and seed.isdigit() else None)
        self.nuonuo.forms.clear()
        self.set_faults(replace(PROFILES["ideal"]))
        return json_response({"reset": True})
