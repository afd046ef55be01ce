"""A naive synchronous invoicing gateway: what drills compare kaipiao with.

This is deliberately the typical code of the field report, not a strawman: a threaded HTTP server
(200 request threads, like a servlet container's default) whose handler prices the invoice, calls
the tax platform inside the request with urllib3's library retry (3 retries with backoff on
connection errors, read timeouts and 5xx) and answers `201` with the invoice number, or `502`
when the platform failed. It keeps nothing: when the caller gives up or sees an error, the order
has no invoice, and a retry after a lost answer sends the invoice again.

    python -m kaipiao.ops.naive --platform-url URL --sellers FILE [--port 0]

`FILE` maps API keys to sellers: {"<api key>": {"tax_id": "…", "region": "31"}, …}.
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import urllib3
from urllib3.util.retry import Retry

from kaipiao.domain.codes import new_serial_no
from kaipiao.domain.errors import DomainError
from kaipiao.domain.invoice import SellerPolicy, price_invoice
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine
from kaipiao.platform.wire import encode_invoice
from kaipiao.services.invoice_request import InvoiceCreate

REQUEST_THREADS = 200
RETRY = Retry(
    total=3, connect=3, read=3, status=3, backoff_factor=0.2,
    status_forcelist=(500, 502, 503, 504), allowed_methods=None, raise_on_status=False,
)  # fmt: skip
TIMEOUT = urllib3.Timeout(connect=2.0, read=5.0)


def platform_body(body: bytes, seller: dict[str, str]) -> dict[str, Any]:
    """The platform request for a `POST /v1/invoices` body (parsed by kaipiao's own schema,
    priced by the domain rules)."""
    priced = price_invoice(InvoiceCreate.model_validate_json(body).to_domain(), SellerPolicy())
    invoice = PlatformInvoice(
        serial_no=new_serial_no(datetime.now(UTC)),
        order_ref=priced.request.order_id,
        seller_tax_id=seller["tax_id"],
        seller_region=seller.get("region"),
        invoice_type=priced.request.invoice_type.value,
        buyer=priced.request.buyer,
        lines=tuple(
            PlatformLine(
                name=p.request.name, tax_code=p.request.tax_code, quantity=p.request.quantity,
                unit_price=p.request.unit_price, tax_rate=p.request.tax_rate,
                amount=p.money.amount, tax=p.money.tax, spec=p.request.spec, unit=p.request.unit,
            )
            for p in priced.lines
        ),
        total_amount=priced.totals.total_amount,
        total_tax=priced.totals.total_tax,
        total=priced.totals.total,
        remark=priced.request.remark,
    )  # fmt: skip
    return encode_invoice(invoice)


class NaiveGateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], platform_url: str, sellers: dict[str, Any]):
        super().__init__(address, _Handler)
        self.platform_url = platform_url.rstrip("/")
        self.sellers = sellers
        self.http = urllib3.PoolManager(maxsize=REQUEST_THREADS, retries=RETRY, timeout=TIMEOUT)
        self.slots = threading.BoundedSemaphore(REQUEST_THREADS)


class _Handler(BaseHTTPRequestHandler):
    server: NaiveGateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/invoices":
            self._answer(404, {"code": "not_found"})
            return
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        seller = self.server.sellers.get(key)
        if seller is None:
            self._answer(401, {"code": "unauthenticated"})
            return
        try:
            request = platform_body(body, seller)
        except (ValueError, DomainError) as exc:  # a pydantic ValidationError is a ValueError
            self._answer(400, {"code": "invalid_request", "detail": str(exc)})
            return
        with self.server.slots:  # a full pool queues the caller, as a servlet container does
            try:
                response = self.server.http.request(
                    "POST", f"{self.server.platform_url}/v1/invoices",
                    body=json.dumps(request).encode(),
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
            except urllib3.exceptions.HTTPError as exc:
                self._answer(502, {"code": "platform_unavailable", "detail": type(exc).__name__})
                return
        answer = response.json() if response.data else {}
        if response.status == 200 and answer.get("status") == "issued":
            self._answer(201, {"order_id": request["order_ref"], "status": "issued",
                               "invoice_number": answer["invoice_number"]})  # fmt: skip
        else:
            self._answer(502, {"code": "platform_error", "platform_status": response.status})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--platform-url", required=True)
    parser.add_argument("--sellers", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sellers = json.loads(args.sellers.read_text())
    server = NaiveGateway((args.host, args.port), args.platform_url, sellers)
    host, port = server.server_address[:2]
    print(f"naive gateway listening on http://{host!s}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
