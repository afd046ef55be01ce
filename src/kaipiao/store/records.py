"""The stored invoice: one row of `invoices` as the repositories hand it out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.store.tables import invoices

COLUMNS = tuple(column.name for column in invoices.c)


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    id: str
    seller_id: str
    order_id: str
    kind: Kind
    region: str
    original_id: str | None
    status: Status
    invoice_type: str
    serial_no: str
    invoice_number: str | None
    issued_at: datetime | None
    request_hash: str
    buyer: dict[str, Any]
    lines: list[dict[str, Any]]
    remark: str | None
    callback_url: str | None
    total_amount: Decimal
    total_tax: Decimal
    total: Decimal
    total_in_words: str
    attempts: int
    next_attempt_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    lease_token: int
    resend_after: datetime | None
    error_code: str | None
    error_message: str | None
    cancel_requested: bool
    reverse_reason: str | None
    created_at: datetime
    updated_at: datetime
    part: int = 1
    parts: int = 1
    order_ids: list[str] | None = None
    reversible_total: Decimal | None = None
    reversible: list[dict[str, Any]] | None = None
    files: dict[str, dict[str, Any]] | None = None
    delivery: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: Any) -> StoredInvoice:
        """From a row of every `invoices` column in table order (`select(invoices)`,
        `returning(*invoices.c)`). Zipping with the names: building `row._mapping`'s key view
        per row was a fifth of a worker's claim time."""
        data = dict(zip(COLUMNS, row, strict=True))
        data.pop("order_key", None)
        data["kind"] = Kind(data["kind"])
        data["status"] = Status(data["status"])
        data["buyer"] = json.loads(data["buyer"])
        data["lines"] = json.loads(data["lines"])
        data["cancel_requested"] = bool(data["cancel_requested"])
        for name in ("order_ids", "reversible", "files", "delivery"):
            if data[name] is not None:
                data[name] = json.loads(data[name])
        return cls(**data)
