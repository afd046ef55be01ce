"""The public JSON of an invoice: the one rendering that the API answers with, idempotent
replays repeat, webhook bodies carry and the CLI prints. Times in one form, RFC 3339 in UTC with
`Z` (`2026-11-27T08:00:00.123456Z`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaipiao.domain.lifecycle import Kind
from kaipiao.store.records import StoredInvoice

MEDIA_TYPES = {"pdf": "application/pdf", "xml": "application/xml"}


def json_time(moment: datetime | None) -> str | None:
    """A UTC time as public JSON carries it (`…Z`), or None."""
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def render_invoice(invoice: StoredInvoice) -> dict[str, Any]:
    """The invoice resource as JSON-ready data (the shape of `api.schemas.InvoicePublic`)."""
    error = (
        {"code": invoice.error_code, "message": invoice.error_message}
        if invoice.error_code
        else None
    )
    return {
        "id": invoice.id,
        "order_id": invoice.order_id,
        "kind": invoice.kind.value,
        "status": invoice.status.value,
        "invoice_type": invoice.invoice_type,
        "serial_no": invoice.serial_no,
        "invoice_number": invoice.invoice_number,
        "issued_at": json_time(invoice.issued_at),
        "total_amount": str(invoice.total_amount),
        "total_tax": str(invoice.total_tax),
        "total": str(invoice.total),
        "total_in_words": invoice.total_in_words,
        "lines": invoice.lines,
        "buyer": invoice.buyer,
        "remark": invoice.remark,
        "callback_url": invoice.callback_url,
        "attempts": invoice.attempts,
        "next_attempt_at": json_time(invoice.next_attempt_at),
        "cancel_requested": invoice.cancel_requested,
        "error": error,
        "original_id": invoice.original_id,
        "created_at": json_time(invoice.created_at),
        "updated_at": json_time(invoice.updated_at),
        "part": invoice.part,
        "parts": invoice.parts,
        "order_ids": invoice.order_ids or [invoice.order_id],
        "reversible_total": _reversible(invoice),
        "files": _files(invoice),
        "delivery": invoice.delivery,
    }


def _files(invoice: StoredInvoice) -> list[dict[str, Any]]:
    """The invoice's stored files, each with its download path and SHA3-256 (the ledger's)."""
    return [
        {"kind": kind, "media_type": MEDIA_TYPES.get(kind, "application/octet-stream"),
         "url": f"/v1/invoices/{invoice.id}/files/{kind}", **about}
        for kind, about in sorted((invoice.files or {}).items())
    ]  # fmt: skip


def _reversible(invoice: StoredInvoice) -> str | None:
    """What is left to reverse of a blue invoice (all of it until a reversal is requested,
    also for rows from before it was stored); None for a red one."""
    if invoice.kind is not Kind.BLUE:
        return None
    left = invoice.reversible_total if invoice.reversible_total is not None else invoice.total
    return str(left)
