"""The invoices table as a work queue: claiming due invoices under a lease, renewing, releasing,
and writing results fenced by the lease token.

An invoice is due when it is `queued` and its `next_attempt_at` has come, or `issuing` with no
live lease (a pending invoice waiting for its next poll, or one whose worker died) and its time
has come. Claiming takes a lease (`lease_owner`, `lease_expires_at`) and bumps `lease_token`;
every later write names the token it holds, so a worker whose lease expired and was taken over
cannot overwrite the new owner's work (fencing). PostgreSQL claims with FOR UPDATE SKIP LOCKED,
so concurrent workers never wait for, or take, each other's rows; SQLite has one writer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection

from kaipiao.domain.lifecycle import Status, ensure_transition
from kaipiao.store import files, webhooks
from kaipiao.store.events import append_event, append_events
from kaipiao.store.records import StoredInvoice
from kaipiao.store.tables import invoices


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed invoice, with the status it had before the claim, the token it holds, and the
    `resend_after` that earlier attempts left (None: nothing was ever sent)."""

    invoice: StoredInvoice
    previous: Status
    token: int
    resend_after: datetime | None

    def may_resend(self, now: datetime) -> bool:
        """May a "not found" now be trusted? Only once every earlier send must have settled."""
        return self.resend_after is None or now >= self.resend_after

    @property
    def must_query_first(self) -> bool:
        """A call may already have reached the platform: ask it before sending anything.

        `issuing` means an outcome is unconfirmed; a `resend_after` means some earlier attempt
        may have sent. An invoice whose every earlier attempt certainly sent nothing (refused,
        503, throttled) has neither, and is simply sent again."""
        return self.previous is Status.ISSUING or self.resend_after is not None

    @property
    def is_retry(self) -> bool:
        return self.invoice.attempts > 1


def claim_due(
    conn: Connection,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    settle: timedelta = timedelta(seconds=60),
    skip_regions: Sequence[str] = (),
) -> list[Claimed]:
    """Lease up to `limit` due invoices. Each claim moves `resend_after` to the end of the lease
    plus `settle`: whatever this claim sends, it sends before its lease ends."""
    c = invoices.c
    # Two range scans of the (status, next_attempt_at) index, oldest first; one OR-ed query
    # cannot use it and scanned the whole backlog per claim. A claim moves next_attempt_at to
    # the end of its lease (and renewals keep it there), so in-flight rows are never "due".
    found: list[Any] = []
    for status in (Status.ISSUING, Status.QUEUED):
        if len(found) >= limit:
            break
        query = select(c.id, c.status, c.resend_after).where(
            c.status == status.value, c.next_attempt_at <= now
        )
        if status is Status.ISSUING:
            query = query.where(or_(c.lease_expires_at.is_(None), c.lease_expires_at < now))
        if skip_regions:
            query = query.where(c.region.not_in(list(skip_regions)))
        query = query.order_by(c.next_attempt_at).limit(limit - len(found))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        found += conn.execute(query).all()
    if not found:
        return []
    previous = {row.id: (Status(row.status), row.resend_after) for row in found}
    rows = conn.execute(
        update(invoices)
        .where(c.id.in_(list(previous)))
        .values(
            status=Status.ISSUING.value,
            lease_owner=owner,
            lease_expires_at=now + lease,
            lease_token=c.lease_token + 1,
            attempts=c.attempts + 1,
            next_attempt_at=now + lease,
            resend_after=now + lease + settle,
            updated_at=now,
        )
        .returning(*invoices.c)
    ).all()
    claimed = []
    for row in rows:
        status, resend_after = previous[row.id]
        claimed.append(Claimed(StoredInvoice.from_row(row), status, row.lease_token, resend_after))
    append_events(
        conn,
        [
            {
                "invoice_id": item.invoice.id,
                "seller_id": item.invoice.seller_id,
                "type": "claimed",
                "payload": {
                    "from": item.previous.value,
                    "to": Status.ISSUING.value,
                    "owner": owner,
                    "attempt": item.invoice.attempts,
                    "token": item.token,
                },
            }
            for item in claimed
        ],
        now=now,
    )
    return claimed


def renew_leases(
    conn: Connection,
    *,
    owner: str,
    ids: Sequence[str],
    until: datetime,
    settle: timedelta = timedelta(seconds=60),
) -> set[str]:
    """Extend this worker's leases on `ids`; returns the ids it still held."""
    if not ids:
        return set()
    rows = conn.execute(
        update(invoices)
        .where(
            invoices.c.id.in_(list(ids)),
            invoices.c.lease_owner == owner,
            invoices.c.status == Status.ISSUING.value,
        )
        .values(lease_expires_at=until, next_attempt_at=until, resend_after=until + settle)
        .returning(invoices.c.id)
    ).all()
    return {row.id for row in rows}


@functools.cache
def _settle_statement(keys: tuple[str, ...]) -> Any:
    """The fenced UPDATE for one set of columns, built once (measured: building and caching a
    fresh statement per result cost a tenth of a worker's CPU)."""
    c = invoices.c
    return (
        update(invoices)
        .where(
            c.id == bindparam("w_id"),
            c.lease_token == bindparam("w_token"),
            c.status == Status.ISSUING.value,
        )
        .values({key: bindparam(f"v_{key}", type_=c[key].type) for key in keys})
        .returning(c.cancel_requested)
    )


def settle(
    conn: Connection,
    claimed: Claimed,
    target: Status,
    *,
    now: datetime,
    event: str,
    fields: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
) -> StoredInvoice | None:
    """Write a result for a claimed invoice if its lease is still ours: status, fields, lease
    cleared, one event. None (nothing written) if the lease was lost."""
    if target is not Status.ISSUING:
        ensure_transition(Status.ISSUING, target)
    values: dict[str, Any] = {
        "status": target.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
        **(fields or {}),
    }
    # Only `cancel_requested` can change under a lease (the API sets it), so that is all this
    # reads back; the rest is what the claim read plus what is written here. (Measured: reading
    # and parsing the whole row back took a fifth of a worker's CPU.)
    params = {f"v_{key}": value for key, value in values.items()}
    row = conn.execute(
        _settle_statement(tuple(values)),
        {**params, "w_id": claimed.invoice.id, "w_token": claimed.token},
    ).first()
    if row is None:
        return None
    append_event(
        conn, invoice_id=claimed.invoice.id, seller_id=claimed.invoice.seller_id, type=event,
        payload={"from": Status.ISSUING.value, "to": target.value, **(payload or {})}, now=now,
    )  # fmt: skip
    changed = {k: v for k, v in values.items() if k != "status"}
    settled = replace(
        claimed.invoice, status=target, cancel_requested=bool(row.cancel_requested), **changed
    )
    webhooks.enqueue(conn, settled, now)
    files.enqueue(conn, settled, now)
    return settled


def release(
    conn: Connection, claimed: Claimed, *, now: datetime, until: datetime, reason: str
) -> bool:
    """Give a claimed invoice back untouched (no call was made): its previous status, its
    attempt not charged, its earlier `resend_after`, due again at `until`."""
    return (
        settle(
            conn,
            claimed,
            claimed.previous,
            now=now,
            event="released",
            fields={
                "attempts": claimed.invoice.attempts - 1,
                "next_attempt_at": until,
                "resend_after": claimed.resend_after,
            },
            payload={"reason": reason},
        )
        is not None
    )
