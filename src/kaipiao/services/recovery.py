"""After a restore: record it in the ledger, bring back from the platform what it issued since
the backup, and say what the ledger lost.

`mark_restore` appends a `restored` event after the backup's head N, so the chain itself says
it was rolled back to N (and when, from which backup). `recover` is reconciliation in recover
mode: for every seller it pages through the platform's listing from the backup's time and, by
serial number,

- an invoice the restored store has as queued, issuing or attention (accepted before the backup,
  issued after it) is settled as issued with the platform's number (event `recovered`);
- an invoice the store never had (accepted and issued after the backup) is inserted as issued
  with what the listing gives (serial, order reference, number, time, total; event `recovered`),
  so its order is never sent again: a caller's retry finds it;
- an invoice rejected or cancelled here but issued there is a contradiction, into `attention`.

Invoices accepted after the backup that never reached the platform cannot be recovered from it:
they are the restore's loss (its RPO). The store cannot name them (they were only in the lost
store); `lost_heads` counts the ledger events lost when signed heads past N were published, and
callers' own records (the drill's acknowledgements) name the invoices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from kaipiao.domain.lifecycle import Status, can_transition
from kaipiao.ledger.signing import Checkpoint
from kaipiao.platform.protocol import ListedInvoice, TaxPlatform
from kaipiao.services.ids import invoice_id
from kaipiao.services.reconcile import _listing
from kaipiao.store import invoices as repo
from kaipiao.store import recovery as store
from kaipiao.store.database import Conn, Database
from kaipiao.store.sellers import list_sellers

log = logging.getLogger("kaipiao.recovery")
WAITING = (Status.QUEUED, Status.ISSUING, Status.ATTENTION)


@dataclass
class RecoverReport:
    since: datetime
    listed: int = 0
    recovered: list[str] = field(default_factory=list)  # "seller/order serial → number"
    settled: list[str] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


async def mark_restore(
    db: Database, *, backup: str, backup_taken_at: datetime | None, now: datetime
) -> int:
    """Record the restore in the ledger; the sequence number the chain was rolled back to."""
    return await db.exclusive(
        partial(store.record_restore, backup=backup, backup_taken_at=backup_taken_at, now=now)
    )


def _recover_one(
    conn: Conn, seller_id: str, region: str, item: ListedInvoice, now: datetime
) -> tuple[str, str]:
    """One listed invoice: ("recovered" | "settled" | "contradiction" | "known", what)."""
    what = f"{seller_id}/{item.order_ref} {item.serial_no} → {item.invoice_number}"
    local = store.find_by_serial(conn, item.serial_no)
    if local is None:
        original = (store.find_by_number(conn, item.original_invoice_number)
                    if item.original_invoice_number else None)  # fmt: skip
        store.insert_recovered(
            conn, invoice_id=invoice_id(now), seller_id=seller_id, region=region, kind=item.kind,
            order_ref=item.order_ref, serial_no=item.serial_no, invoice_number=item.invoice_number,
            issued_at=item.issued_at, total=item.total, original_id=original, now=now,
        )  # fmt: skip
        return "recovered", what
    if local.status in WAITING:
        fields = {"invoice_number": item.invoice_number, "issued_at": item.issued_at,
                  "error_code": None, "error_message": None, "next_attempt_at": None,
                  "lease_owner": None, "lease_expires_at": None}  # fmt: skip
        payload = {"invoice_number": item.invoice_number,
                   "source": "platform listing after a restore"}  # fmt: skip
        if local.status is Status.QUEUED:  # queued → issued passes through issuing
            repo.transition(conn, local, Status.ISSUING, now=now, event="recovering",
                            payload=payload)  # fmt: skip
            local = repo.get_invoice(conn, local.id)
            assert local is not None
        repo.transition(conn, local, Status.ISSUED, now=now, event=store.RECOVERED,
                        payload=payload, fields=fields)  # fmt: skip
        return "settled", what
    if local.status is Status.ISSUED and local.invoice_number == item.invoice_number:
        return "known", what
    why = f"issued on the platform as {item.invoice_number}, {local.status.value} here"
    if can_transition(local.status, Status.ATTENTION):
        repo.transition(
            conn, local, Status.ATTENTION, now=now, event="reconcile_contradiction",
            payload={"reason": why}, fields={"error_code": "reconcile_contradiction",
                                             "error_message": why},
        )  # fmt: skip
    return "contradiction", f"{local.id}: {why}"


async def recover(
    db: Database, platform: TaxPlatform, *, since: datetime, clock: Callable[[], datetime]
) -> RecoverReport:
    """Bring back what the platform issued since `since` (see the module text)."""
    report = RecoverReport(since=since)
    for seller in await db.read(list_sellers):
        listed = await _listing(platform, seller.tax_id, since, clock() + timedelta(minutes=1))
        if listed is None:
            report.unreachable.append(seller.id)
            continue
        for item in sorted(listed.values(), key=lambda i: (i.kind != "blue", i.issued_at)):
            report.listed += 1
            kind, what = await db.write(
                partial(
                    _recover_one, seller_id=seller.id, region=seller.region, item=item, now=clock()
                )
            )
            if kind == "recovered":
                report.recovered.append(what)
            elif kind == "settled":
                report.settled.append(what)
            elif kind == "contradiction":
                report.contradictions.append(what)
    log.info("recovered since %s: %d listed, %d recovered, %d settled, %d contradictions",
             since.isoformat(), report.listed, len(report.recovered), len(report.settled),
             len(report.contradictions))  # fmt: skip
    return report


def lost_heads(restores: list[store.Restore], published: list[Checkpoint]) -> tuple[
    list[Checkpoint], list[str]
]:  # fmt: skip
    """Split published heads into those to check against the chain and, for each restore, the
    heads signed before it over more events than it kept: the evidence of what it lost, as
    sentences for `ledger verify`."""
    keep: list[Checkpoint] = []
    notes = [
        f"the chain was rolled back to event {r.rolled_back_to} by a restore on "
        f"{r.restored_at.isoformat(timespec='seconds')} (backup {r.backup or '?'}"
        + (f" of {r.backup_taken_at.isoformat(timespec='seconds')}" if r.backup_taken_at else "")
        + f"); event {r.seq} records it"
        for r in restores
    ]
    lost: dict[int, list[Checkpoint]] = {}
    for head in published:
        signed = datetime.fromisoformat(head.time.replace("Z", "+00:00"))
        before = [r for r in restores if signed < r.restored_at and head.size > r.rolled_back_to]
        if before:
            lost.setdefault(before[-1].seq, []).append(head)
        else:
            keep.append(head)
    for restore in restores:
        heads = lost.get(restore.seq, [])
        if heads:
            top = max(heads, key=lambda h: h.size)
            notes.append(
                f"published heads past event {restore.rolled_back_to}, signed before that "
                f"restore, are the evidence of what it lost: {len(heads)} head(s), the last over "
                f"{top.size} events (signed {top.time}): events {restore.rolled_back_to + 1}–"
                f"{top.size} of the old chain are gone"
            )
    return keep, notes
