"""The v1 routes: each parses, calls one service function, and formats the answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kaipiao.api.auth import AdminDep, SellerDep
from kaipiao.api.intake_path import accept_invoice
from kaipiao.api.problems import MEDIA_TYPE, Problem
from kaipiao.api.schemas import InvoicePage, InvoicePublic
from kaipiao.domain.lifecycle import Status
from kaipiao.services import cancellation, delivery, files, invoices, ledger, reversal, status
from kaipiao.services.invoice_request import InvoiceCreate, Quantity
from kaipiao.store.documents import render_invoice


class ProblemPublic(BaseModel):
    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    schema = {"$ref": "#/components/schemas/ProblemPublic"}
    return {
        status: {"model": ProblemPublic, "content": {MEDIA_TYPE: {"schema": schema}}}
        for status in statuses
    }


AUTH = (400, 401, 403, 429, 500, 503)  # 400: a path or query that is not valid text
# Path and query text: no control characters (the guard refuses them with 400 invalid_text
# before any route; the schema says so, so generated clients and fuzzers know).
TEXT = r"^[^\x00-\x1f\x7f]*$"
InvoiceId = Annotated[str, Path(pattern=TEXT)]
MAX_SEQ = 2**63 - 1  # the ledger's sequence numbers are 64-bit
router = APIRouter()


@router.post(
    "/v1/invoices",
    status_code=202,
    response_model=InvoicePublic,
    responses={200: {"model": InvoicePublic}, **_problems(400, 409, 413, 415, 422, *AUTH)},
    tags=["invoices"],
)
async def create_invoice(
    body: InvoiceCreate,
    seller: SellerDep,
    request: Request,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> JSONResponse:
    """Accept an invoice request; it is stored before this answers, then issued."""
    # Served by `kaipiao.api.intake_path` in the app `create_app` builds (the hot path skips
    # FastAPI's per-request machinery); this declaration describes it in the OpenAPI document
    # and serves a router mounted without that layer.
    code, document = await accept_invoice(request.app.state, seller, body, idempotency_key)
    return JSONResponse(document, status_code=code)


@router.get(
    "/v1/invoices/{invoice_id}",
    response_model=InvoicePublic,
    responses=_problems(404, 422, *AUTH),
    tags=["invoices"],
)
async def get_invoice(invoice_id: InvoiceId, seller: SellerDep, request: Request) -> JSONResponse:
    """One invoice with its current status."""
    invoice = await invoices.get_invoice(request.app.state.database, seller, invoice_id)
    return JSONResponse(render_invoice(invoice))


@router.get(
    "/v1/invoices/{invoice_id}/files/{kind}",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "application/xml": {}}},
               304: {"description": "Not modified (If-None-Match)"},
               **_problems(404, 422, *AUTH)},
    tags=["invoices"],
)  # fmt: skip
async def get_invoice_file(
    invoice_id: str,
    kind: Literal["pdf", "xml"],
    seller: SellerDep,
    request: Request,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The issued invoice's PDF or XML; 404 `files_not_ready` until it is fetched."""
    state = request.app.state
    served = await files.invoice_file(state.database, state.file_store, seller, invoice_id, kind)
    etag = f'"{served.sha3_256}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400",
               "Content-Disposition": f'attachment; filename="{served.filename}"'}  # fmt: skip
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(served.content, media_type=served.media_type, headers=headers)


@router.post(
    "/v1/invoices/{invoice_id}/delivery",
    status_code=202,
    response_model=InvoicePublic,
    responses=_problems(404, 409, 422, *AUTH),
    tags=["invoices"],
)
async def resend_invoice_files(
    invoice_id: str, seller: SellerDep, request: Request
) -> JSONResponse:
    """Email the invoice's files to its buyer again."""
    state = request.app.state
    invoice = await delivery.resend(state.database, seller, invoice_id, now=state.clock())
    return JSONResponse(render_invoice(invoice), status_code=202)


@router.get(
    "/v1/invoices",
    response_model=InvoicePage,
    responses=_problems(400, 422, *AUTH),
    tags=["invoices"],
)
async def list_invoices(
    seller: SellerDep,
    request: Request,
    order_id: Annotated[str | None, Query(max_length=64, pattern=TEXT)] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64, pattern=TEXT)] = None,
) -> JSONResponse:
    """This seller's invoices, newest first; pass `next_cursor` back as `cursor`."""
    page, next_cursor = await invoices.list_invoices(
        request.app.state.database, seller,
        order_id=order_id, status=status, cursor=cursor, limit=limit,
    )  # fmt: skip
    return JSONResponse(
        {"data": [render_invoice(invoice) for invoice in page], "next_cursor": next_cursor}
    )


@router.post(
    "/v1/invoices/{invoice_id}/cancel",
    response_model=InvoicePublic,
    responses={202: {"model": InvoicePublic}, **_problems(404, 409, 422, *AUTH)},
    tags=["invoices"],
)
async def cancel_invoice(
    invoice_id: InvoiceId, seller: SellerDep, request: Request
) -> JSONResponse:
    """Cancel an invoice the platform does not have yet (202 if a call may be in flight)."""
    state = request.app.state
    invoice = await cancellation.cancel_invoice(
        state.database, seller, invoice_id, now=state.clock()
    )
    status = 202 if invoice.status is not Status.CANCELLED else 200
    return JSONResponse(render_invoice(invoice), status_code=status)


class ReverseLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: Annotated[int, Field(ge=0, le=4000, description="the goods line's index in `lines`")]
    quantity: Quantity


class ReverseCreate(BaseModel):
    """Everything left (neither `lines` nor `amount`), some units of some lines, or an amount
    including tax (部分红冲)."""

    model_config = ConfigDict(extra="forbid")
    reason: Literal["invoicing_error", "sales_return", "service_stopped", "sales_discount"]
    lines: Annotated[list[ReverseLine], Field(min_length=1, max_length=2000)] | None = None
    amount: Quantity | None = Field(default=None, description="total including tax to reverse")

    @model_validator(mode="after")
    def _lines_or_amount(self) -> ReverseCreate:
        if self.lines is not None and self.amount is not None:
            raise ValueError("reverse either lines or an amount, not both")
        return self


@router.post(
    "/v1/invoices/{invoice_id}/reverse",
    status_code=202,
    response_model=InvoicePublic,
    responses=_problems(400, 404, 409, 413, 415, 422, *AUTH),
    tags=["invoices"],
)
async def reverse_invoice(
    invoice_id: InvoiceId, body: ReverseCreate, seller: SellerDep, request: Request
) -> JSONResponse:
    """Queue a red-letter invoice against an issued one, for all or part; answers with it."""
    state = request.app.state
    lines = [(line.index, line.quantity) for line in body.lines] if body.lines else None
    red = await reversal.reverse_invoice(
        state.database, seller, invoice_id, body.reason, now=state.clock(),
        lines=lines, amount=body.amount,
    )  # fmt: skip
    return JSONResponse(render_invoice(red), status_code=202)


@router.get(
    "/v1/invoices/{invoice_id}/webhooks",
    responses=_problems(404, 422, *AUTH),
    tags=["invoices"],
)
async def invoice_webhooks(
    invoice_id: InvoiceId, seller: SellerDep, request: Request
) -> JSONResponse:
    """Webhook deliveries for this invoice: pending, delivered or failed, with each one's last
    answer (status code or error) and attempts."""
    deliveries = await invoices.webhook_deliveries(request.app.state.database, seller, invoice_id)
    return JSONResponse({"data": deliveries})


@router.get(
    "/v1/invoices/{invoice_id}/proof",
    responses=_problems(404, 422, *AUTH),
    tags=["ledger"],
)
async def invoice_proof(invoice_id: InvoiceId, seller: SellerDep, request: Request) -> JSONResponse:
    """The invoice's ledger events with inclusion proofs to the latest signed checkpoint;
    check it offline with `kaipiao ledger check-proof FILE --public-key KEY`."""
    state = request.app.state
    doc = await ledger.inclusion_proof(state.database, invoice_id, seller.id, state.tree_cache)
    return JSONResponse(doc)


@router.get(
    "/v1/ledger/consistency",
    responses=_problems(404, 422, *AUTH),
    tags=["ledger"],
)
async def ledger_consistency(
    seller: SellerDep,
    request: Request,
    first: Annotated[int, Query(ge=1, le=MAX_SEQ)],
    second: Annotated[int, Query(ge=1, le=MAX_SEQ)],
) -> JSONResponse:
    """Proof that the signed tree of `first` events is a prefix of the signed tree of `second`
    (both must be checkpoint sizes); check it with `kaipiao ledger check-consistency`."""
    state = request.app.state
    doc = await ledger.consistency_proof(state.database, first, second, state.tree_cache)
    return JSONResponse(doc)


@router.get("/v1/ops/status", responses=_problems(*AUTH), tags=["operations"])
async def ops_status(admin: AdminDep, request: Request) -> JSONResponse:
    """Queue, workers' breakers and limits, incident level (operator keys only)."""
    state = request.app.state
    snap = await status.snapshot(state.database, state.clock())
    return JSONResponse(snap.to_json())


@router.get("/healthz", tags=["operations"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], responses=_problems(503))
async def readyz(request: Request) -> dict[str, str]:
    """The store answers, its schema is current, and the process is not shutting down."""
    if request.app.state.draining:
        raise Problem("shutting_down", "this replica is shutting down; send to another")
    try:
        current = await status.schema_current(request.app.state.database)
    except Exception as exc:
        raise Problem("store_unavailable", f"the database does not answer: {exc}") from None
    if not current:
        raise Problem(
            "store_unavailable", "the database schema is not current: run `kaipiao migrate`"
        )
    return {"status": "ready"}


@router.get("/metrics", tags=["operations"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    return Response(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
