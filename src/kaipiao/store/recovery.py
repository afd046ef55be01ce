"""After a restore: the restore's own ledger event, the restores the chain records, and invoices
brought back from the platform's listing (`services/recovery.py` decides which)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.words import amount_in_words
from kaipiao.store import ledger as chain
from kaipiao.store.events import append_event
from kaipiao.store.invoices import insert_invoice
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import invoices, ledger_events

RESTORED = "restored"
RECOVERED = "recovered"
RECOVERED_REMARK = ("recovered from the platform's listing after a restore: buyer, lines and the "
                    "tax split were not in the listing")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Restore:
    """A restore as the chain records it: its event's sequence number and what it said."""

    seq: int
    rolled_back_to: int  # the chain's head in the backup
    restored_at: datetime
    backup_taken_at: datetime | None
    backup: str


def record_restore(
    conn: Connection, *, backup: str, backup_taken_at: datetime | None, now: datetime
) -> int:
    """Append the restore's event after the restored head; returns that head's sequence."""
    size, _ = chain.head(conn)
    append_event(
        conn, invoice_id=None, seller_id=None, type=RESTORED, now=now,
        payload={"rolled_back_to": size, "backup": backup,
                 "backup_taken_at": backup_taken_at.isoformat() if backup_taken_at else None},
    )  # fmt: skip
    return size


def restores(conn: Connection) -> list[Restore]:
    """Every restore the chain records, oldest first."""
    rows = conn.execute(
        select(ledger_events.c.seq, ledger_events.c.payload, ledger_events.c.created_at)
        .where(ledger_events.c.type == RESTORED, ledger_events.c.seq.is_not(None))
        .order_by(ledger_events.c.seq)
    ).all()
    found = []
    for seq, payload, created in rows:
        data = json.loads(payload)
        taken = data.get("backup_taken_at")
        found.append(Restore(seq, int(data["rolled_back_to"]), created,
                             datetime.fromisoformat(taken) if taken else None,
                             str(data.get("backup", ""))))  # fmt: skip
    return found


def insert_recovered(
    conn: Connection,
    *,
    invoice_id: str,
    seller_id: str,
    region: str,
    kind: str,
    order_ref: str | None,
    serial_no: str,
    invoice_number: str,
    issued_at: datetime,
    total: Decimal,
    original_id: str | None,
    now: datetime,
) -> StoredInvoice:
    """An invoice the platform issued that the restored store never had, stored as issued with
    what the listing says, and its `recovered` event."""
    values: dict[str, Any] = {
        "id": invoice_id, "seller_id": seller_id, "region": region, "kind": Kind(kind),
        "order_id": order_ref or f"recovered-{serial_no}", "status": Status.ISSUED,
        "invoice_type": "normal", "serial_no": serial_no, "invoice_number": invoice_number,
        "issued_at": issued_at, "request_hash": "recovered", "buyer": {}, "lines": [],
        "remark": RECOVERED_REMARK, "total_amount": total, "total_tax": Decimal("0.00"),
        "total": total, "total_in_words": amount_in_words(total), "original_id": original_id,
        "created_at": issued_at, "updated_at": now,
    }  # fmt: skip
    stored = insert_invoice(conn, values)
    append_event(
        conn, invoice_id=invoice_id, seller_id=seller_id, type=RECOVERED, now=now,
        payload={"from": None, "to": Status.ISSUED.value, "invoice_number": invoice_number,
                 "serial_no": serial_no, "source": "platform listing after a restore"},
    )  # fmt: skip
    return stored


def find_by_serial(conn: Connection, serial_no: str) -> StoredInvoice | None:
    row = conn.execute(select(invoices).where(invoices.c.serial_no == serial_no)).first()
    return None if row is None else StoredInvoice.from_row(row)


def find_by_number(conn: Connection, invoice_number: str) -> str | None:
    return conn.execute(
        select(invoices.c.id).where(invoices.c.invoice_number == invoice_number)
    ).scalar_one_or_none()
