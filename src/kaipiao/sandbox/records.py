"""One invoice on the sandbox platform (blue or red), as its books and journal keep it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kaipiao.platform.wire import format_time, parse_time


@dataclass(slots=True)
class Record:
    """One invoice on the platform (blue or red)."""

    key: int
    serial_no: str
    kind: str
    seller_tax_id: str
    region: str
    order_ref: str | None
    total: str
    created_at: datetime
    status: str  # pending | issued | failed
    final_at: datetime
    fail: bool = False
    invoice_number: str | None = None
    issued_at: datetime | None = None
    original_invoice_number: str | None = None
    reversed_by: str | None = None
    error: str | None = None
    lines: list[dict[str, Any]] | None = None  # as the platform shows them (wire form)
    # What the invoice's files show (kaipiao.sandbox.sheet); a red invoice takes its original's.
    invoice_type: str = "normal"
    buyer: dict[str, Any] | None = None
    remark: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "serial_no": self.serial_no,
            "kind": self.kind,
            "seller_tax_id": self.seller_tax_id,
            "region": self.region,
            "order_ref": self.order_ref,
            "total": self.total,
            "created_at": format_time(self.created_at),
            "status": self.status,
            "final_at": format_time(self.final_at),
            "fail": self.fail,
            "invoice_number": self.invoice_number,
            "issued_at": format_time(self.issued_at) if self.issued_at else None,
            "original_invoice_number": self.original_invoice_number,
            "reversed_by": self.reversed_by,
            "error": self.error,
            "lines": self.lines,
            "invoice_type": self.invoice_type,
            "buyer": self.buyer,
            "remark": self.remark,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        data = dict(data)
        for name in ("created_at", "final_at"):
            data[name] = parse_time(data[name])
        if data["issued_at"]:
            data["issued_at"] = parse_time(data["issued_at"])
        return cls(**data)
