"""The sandbox's Nuonuo-compatible front: `POST /open/v1/services`, API name in the `method` header.

It checks the signature (`kaipiao.platform.nuonuo.signing`) against the app secrets it was started
with (`kaipiao sandbox --nuonuo-app KEY:SECRET`), then runs the same platform state and the same
fault knobs as the sandbox's own protocol: latency, failures, resets, throttling, outages and
ambiguous outcomes all apply. Issuance answers with a provider serial (`invoiceSerialNum`) and
finishes `async_delay_s` later when `async_issue` is on (at once otherwise); queries report the
status codes 2 (issued), 20 (issuing), 21 (signing, the second half of the delay), 22 (failed) and
24 (signing failed). A `callBackUrl` is called with the outcome when the invoice is final.

Refusals the public material does not describe are the sandbox's own, in the provider's
envelope: `sign_invalid` (bad signature or unknown app key), `token_invalid` (no token),
`E9106` for an order number submitted before (the code one public SDK gives), and the sandbox's
validation codes (`invalid_request`, …) for a body it cannot accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from kaipiao.domain.invoice import Buyer
from kaipiao.platform.nuonuo.signing import verify
from kaipiao.platform.outcomes import (
    Duplicate,
    Issued,
    NotFound,
    Pending,
    QueryOutcome,
    Rejected,
)
from kaipiao.platform.protocol import PlatformInvoice, PlatformLine, RedRequest
from kaipiao.sandbox.gate import FaultGate
from kaipiao.sandbox.http1 import Request, Response, json_response
from kaipiao.sandbox.records import Record

log = logging.getLogger("kaipiao.sandbox.nuonuo")
PATH = "/open/v1/services"
DUPLICATE = "E9106"
MAX_QUERY = 50
REASONS = {"1": "sales_return", "2": "invoicing_error", "3": "service_stopped",
           "4": "sales_discount"}  # fmt: skip
RATE_OF_POLICY = {"03": "exempt", "04": "non_taxable"}


def envelope(code: str, describe: str, result: Any = None) -> Response:
    return json_response({"code": code, "describe": describe, "result": result})


class BadBody(ValueError):
    pass


def _text(data: dict[str, Any], name: str, default: str | None = None) -> str:
    value = data.get(name, default)
    if not isinstance(value, str) or (default is None and not value):
        raise BadBody(f"{name} is required")
    return value


def _decimal(data: dict[str, Any], name: str) -> Decimal:
    try:
        return Decimal(_text(data, name))
    except InvalidOperation:
        raise BadBody(f"{name} is not a number") from None


def decode_order(order: Any) -> tuple[PlatformInvoice, str | None]:
    """A `requestBillingNew` order as the platform state's invoice, and its callback URL."""
    if not isinstance(order, dict):
        raise BadBody("order is required")
    details = order.get("invoiceDetail")
    if not isinstance(details, list) or not 1 <= len(details) <= 2000:
        raise BadBody("invoiceDetail must hold 1 to 2000 lines")
    lines = []
    for d in details:
        if not isinstance(d, dict):
            raise BadBody("invoiceDetail lines are objects")
        policy = d.get("favouredPolicyFlag")
        amount, tax = _decimal(d, "taxExcludedAmount"), _decimal(d, "tax")
        if amount + tax != _decimal(d, "taxIncludedAmount"):
            raise BadBody("taxExcludedAmount + tax must equal taxIncludedAmount")
        rate = RATE_OF_POLICY.get(policy) if isinstance(policy, str) else None
        discount = d.get("invoiceLineProperty") == "1"  # a discount line: no quantity or price
        lines.append(PlatformLine(
            name=_text(d, "goodsName"), tax_code=_text(d, "goodsCode"),
            quantity=None if discount else _decimal(d, "num"),
            unit_price=None if discount else _decimal(d, "price"),
            tax_rate=rate or _text(d, "taxRate"), amount=amount, tax=tax,
            spec=d.get("specType") or None, unit=d.get("unit") or None,
            price_includes_tax=d.get("withTaxFlag") == "1",
            kind="discount" if discount else "goods",
        ))  # fmt: skip
    total_amount = sum((line.amount for line in lines), Decimal(0))
    total_tax = sum((line.tax for line in lines), Decimal(0))
    kind = {"bs": "special", "pc": "normal"}.get(str(order.get("invoiceLine")))
    if kind is None:
        raise BadBody("invoiceLine must be bs or pc")
    order_no = _text(order, "orderNo")
    if len(order_no) > 20:
        raise BadBody("orderNo is at most 20 characters")
    account = order.get("buyerAccount") or None
    invoice = PlatformInvoice(
        serial_no=order_no, order_ref=order_no, seller_tax_id=_text(order, "salerTaxNum"),
        seller_region=None, invoice_type=kind,
        buyer=Buyer(name=_text(order, "buyerName"), tax_id=order.get("buyerTaxNum") or None,
                    address=order.get("buyerAddress") or None,
                    phone=order.get("buyerTel") or None, account=account,
                    email=order.get("email") or None),
        lines=tuple(lines), total_amount=total_amount, total_tax=total_tax,
        total=total_amount + total_tax, remark=order.get("remark") or None,
    )  # fmt: skip
    callback = order.get("callBackUrl")
    return invoice, callback if isinstance(callback, str) and callback else None


def decode_red_detail(detail: Any) -> tuple[PlatformLine, ...]:
    """A partial 红字确认单's `detail` lines (empty: the whole blue invoice)."""
    if detail is None or detail == []:
        return ()
    if not isinstance(detail, list):
        raise BadBody("detail is a list of lines")
    lines = []
    for d in detail:
        if not isinstance(d, dict):
            raise BadBody("detail lines are objects")
        policy = d.get("favouredPolicyFlag")
        rate = RATE_OF_POLICY.get(policy) if isinstance(policy, str) else None
        index = _text(d, "blueDetailIndex")
        if not index.isdigit() or int(index) < 1:
            raise BadBody("blueDetailIndex is a line number from 1")
        num = d.get("num")
        lines.append(PlatformLine(
            name=_text(d, "goodsName"), tax_code=_text(d, "goodsCode"),
            quantity=_decimal(d, "num") if num else None,
            unit_price=_decimal(d, "taxExcludedPrice") if d.get("taxExcludedPrice") else None,
            tax_rate=rate or _text(d, "taxRate"), amount=_decimal(d, "taxExcludedAmount"),
            tax=_decimal(d, "taxAmount"), spec=d.get("specType") or None,
            unit=d.get("unit") or None, original_index=int(index) - 1,
        ))  # fmt: skip
    return tuple(lines)


@dataclass
class RedForm:
    bill_no: str
    bill_id: str
    seller: str
    blue_number: str
    reason: str
    status: str = "01"
    lines: tuple[PlatformLine, ...] = ()


@dataclass
class NuonuoFront:
    """State of the Nuonuo front beside the platform state: app secrets and 红字确认单 forms."""

    apps: dict[str, str] = field(default_factory=dict)
    forms: dict[str, RedForm] = field(default_factory=dict)  # by billId
    callbacks: list[asyncio.Task[None]] = field(default_factory=list)
    base_url: str = ""  # where the sandbox serves files (set when the server starts)

    def provider_serial(self, record: Record) -> str:
        return f"{record.key:020d}"

    def _auth(self, request: Request) -> Response | None:
        secret = self.apps.get(request.query.get("appkey", ""))
        given = request.headers.get("x-nuonuo-sign", "")
        text = request.body.decode(errors="replace")
        if secret is None or not verify(secret, request.query, text, given):
            return envelope("sign_invalid", "签名验证失败")
        if not request.headers.get("accesstoken"):
            return envelope("token_invalid", "accessToken 无效")
        return None

    async def handle(self, gate: FaultGate, request: Request) -> Response:
        refused = self._auth(request)
        method = request.headers.get("method", "")
        name = method.rsplit(".", 1)[-1]
        if refused is not None:
            gate.state.calls[f"nuonuo.{name}:refused"] += 1
            return refused
        try:
            data = json.loads(request.body)
            if not isinstance(data, dict):
                raise BadBody("the body is a JSON object")
            handler = {
                "requestBillingNew": self._issue, "queryInvoiceResult": self._query,
                "saveInvoiceRedConfirm": self._red_confirm,
                "queryInvoiceRedConfirm": self._red_confirm_query,
                "fastInvoiceRed": self._fast_red,
            }.get(name)  # fmt: skip
            if handler is None:
                return envelope("method_unknown", f"unknown method {method!r}")
            return await handler(gate, request, data)
        except (ValueError, BadBody) as exc:
            gate.state.calls[f"nuonuo.{name}:bad_request"] += 1
            return envelope("invalid_request", str(exc))

    # -- issue and query -----------------------------------------------------------------------
    async def _issue(self, gate: FaultGate, request: Request, data: dict[str, Any]) -> Response:
        invoice, callback = decode_order(data.get("order"))
        user_tax = request.headers.get("usertax")
        if user_tax != invoice.seller_tax_id:
            return envelope("invalid_request", "userTax and salerTaxNum differ")
        state = gate.state
        return await self._submit(
            gate, request, "nuonuo.issue", invoice.serial_no, invoice.seller_tax_id,
            lambda now: state.issue(invoice, now), callback,
        )  # fmt: skip

    async def _submit(
        self,
        gate: FaultGate,
        request: Request,
        endpoint: str,
        order_no: str,
        seller: str,
        operation: Callable[[datetime], Issued | Duplicate | Pending | Rejected],
        callback: str | None = None,
    ) -> Response:
        """An issue (blue or red) under `order_no`: refused as a duplicate while dedup is on,
        else run with the faults; answered with the provider's serial."""
        state = gate.state
        if state.faults.dedup and order_no in state.by_serial:
            return envelope(DUPLICATE, "订单编号或流水号不能重复")
        outcome, response = await gate.call(request, endpoint, seller, None, operation,
                                                 mutating=True)  # fmt: skip
        if response is not None:
            return response
        if isinstance(outcome, Rejected):
            return envelope(outcome.code, outcome.message)
        record = state.by_serial[order_no][-1]
        if callback:
            self._call_back_later(gate, record, callback)
        return envelope("E0000", "调用成功", {"invoiceSerialNum": self.provider_serial(record)})

    def _status(self, record: Record, now: datetime) -> dict[str, Any]:
        item: dict[str, Any] = {"serialNo": self.provider_serial(record),
                                "orderNo": record.serial_no}  # fmt: skip
        if record.status == "issued":
            # Public SDKs spell the number's field two ways: answer with both, by turns.
            field_name = (
                "allElectronicInvoiceNumber" if record.key % 2 else "allElectronicInvoiceNumbe"
            )
            assert record.issued_at is not None
            item |= {"status": "2", "statusMsg": "开票完成", field_name: record.invoice_number,
                     "invoiceTime": int(record.issued_at.timestamp() * 1000)}  # fmt: skip
            # The files, served by the sandbox itself (`xmlUrl`: the sandbox's name for it).
            for kind in ("pdf", "xml"):
                item[f"{kind}Url"] = f"{self.base_url}/v1/files/{record.invoice_number}.{kind}"
        elif record.status == "failed":
            signing = record.key % 2 == 0
            item |= {"status": "24" if signing else "22",
                     "statusMsg": "签章失败" if signing else "开票失败",
                     "failCause": record.error or "platform_failed"}  # fmt: skip
        else:
            half = record.created_at + (record.final_at - record.created_at) / 2
            signing = now >= half
            item |= {"status": "21" if signing else "20",
                     "statusMsg": "签章中" if signing else "开票中"}  # fmt: skip
        return item

    async def _query(self, gate: FaultGate, request: Request, data: dict[str, Any]) -> Response:
        serials, orders = data.get("serialNos"), data.get("orderNos")
        wanted = serials or orders
        if not isinstance(wanted, list) or not 1 <= len(wanted) <= MAX_QUERY:
            raise BadBody(f"serialNos or orderNos: 1 to {MAX_QUERY} numbers")
        state = gate.state
        found: list[Record] = []

        def look(now: datetime) -> QueryOutcome:
            for number in wanted:
                if serials:
                    key = int(number) if str(number).isdigit() else 0
                    if 0 < key <= len(state.records):
                        found.append(state.records[key - 1])
                else:
                    found.extend(state.by_serial.get(str(number), []))
            state.settle(found, now)
            # What the first entry shows, for the call counts in the stats.
            first = found[0] if found else None
            if first is None:
                return NotFound()
            if first.status == "issued" and first.invoice_number and first.issued_at:
                return Issued(first.invoice_number, first.issued_at)
            if first.status == "pending":
                return Pending()
            return Rejected(first.error or "platform_failed", "the platform failed to issue it")

        _, response = await gate.call(request, "nuonuo.query", None, None, look,
                                           mutating=False)  # fmt: skip
        if response is not None:
            return response
        now = gate.clock()
        return envelope("E0000", "调用成功", [self._status(r, now) for r in found])

    # -- red-letter ----------------------------------------------------------------------------
    async def _red_confirm(self, gate: FaultGate, request: Request,
                           data: dict[str, Any]) -> Response:  # fmt: skip
        bill_id = _text(data, "billId")
        if bill_id in self.forms:
            return envelope(DUPLICATE, "订单编号或流水号不能重复")
        blue = _text(data, "blueInvoiceNumber")
        original = gate.state.by_number.get(blue)
        seller = _text(data, "taxNum")
        if original is None or original.kind != "blue" or original.seller_tax_id != seller:
            return envelope("original_not_found", "no blue invoice of this seller has that number")
        reason = REASONS.get(str(data.get("redReason")))
        if reason is None:
            raise BadBody("redReason must be 1, 2, 3 or 4")
        form = RedForm(f"{len(self.forms) + 1:020d}", bill_id, seller, blue, reason,
                       lines=decode_red_detail(data.get("detail")))  # fmt: skip

        def file(now: datetime) -> Pending:
            self.forms[bill_id] = form  # filed even if the answer is then lost (ambiguous)
            return Pending()

        _, response = await gate.call(request, "nuonuo.red_confirm", seller, original.region,
                                           file, mutating=True)  # fmt: skip
        if response is not None:
            return response
        return envelope("E0000", "调用成功", self._form(form))

    @staticmethod
    def _form(form: RedForm) -> dict[str, Any]:
        return {"billNo": form.bill_no, "billId": form.bill_id, "billStatus": form.status,
                "billUuid": f"uuid-{form.bill_no}"}  # fmt: skip

    async def _red_confirm_query(self, gate: FaultGate, request: Request,
                                 data: dict[str, Any]) -> Response:  # fmt: skip
        form = self.forms.get(_text(data, "billId"))
        return envelope("E0000", "调用成功", [self._form(form)] if form else [])

    async def _fast_red(self, gate: FaultGate, request: Request,
                        data: dict[str, Any]) -> Response:  # fmt: skip
        order_no = _text(data, "orderNo")
        bill_no = _text(data, "billNo")
        form = next((f for f in self.forms.values() if f.bill_no == bill_no), None)
        if form is None or form.seller != _text(data, "taxNum"):
            return envelope("bill_not_found", "no confirmation form with that billNo")
        amount = sum((line.amount for line in form.lines), Decimal(0))
        tax = sum((line.tax for line in form.lines), Decimal(0))
        partial = bool(form.lines)
        red = RedRequest(
            serial_no=order_no, original_invoice_number=form.blue_number, reason=form.reason,
            seller_tax_id=form.seller, lines=form.lines,
            total_amount=amount if partial else None, total_tax=tax if partial else None,
            total=amount + tax if partial else None,
        )  # fmt: skip
        state = gate.state
        return await self._submit(gate, request, "nuonuo.red", order_no, form.seller,
                                  lambda now: state.issue_red(red, now))  # fmt: skip

    # -- callbacks -----------------------------------------------------------------------------
    def _call_back_later(self, gate: FaultGate, record: Record, url: str) -> None:
        delay = max(0.0, (record.final_at - gate.clock()).total_seconds())

        async def call() -> None:
            await asyncio.sleep(delay + 0.05)
            gate.state.settle([record], gate.clock())
            body = self._status(record, gate.clock())
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with aiohttp.ClientSession() as http:
                    await http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=5))
            gate.state.calls["nuonuo.callback:sent"] += 1

        task = asyncio.create_task(call())
        self.callbacks.append(task)
        task.add_done_callback(self.callbacks.remove)
