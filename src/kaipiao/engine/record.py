"""Recording a settlement: one fenced write, plus the compensation an outcome calls for.

`record` runs inside one unit of work: the settlement (status, fields, lease released, one ledger
event) is written only if the claim's lease token still holds, and in the same transaction

- a red invoice issued moves its original `reversing → reversed` once nothing is left of it
  and no other red invoice against it is on its way (partial reversals, services.reversal);
- a red invoice refused gives back what it reserved, and a reversing original goes back to
  `issued`;
- a blue invoice issued while a cancel was requested gets its red invoice: the cancel came while
  the call was in flight, so the invoice exists on the platform and is reversed, not lost.

`record_durably` runs it as its own write and, while the store is down (a restart, a failover
to a standby), tries again: the platform has answered, so the answer is written as soon as any
writable primary takes it (the lease token still fences it), rather than dropped and left for a
query after the lease lapses. A write whose commit was in doubt and did land is harmless to
repeat: the fence also requires `issuing`, so the second one writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.engine.decide import Settlement
from kaipiao.services.reversal import create_red, finish_red, release_red
from kaipiao.store import queue
from kaipiao.store.database import Conn, Database, is_store_down
from kaipiao.store.records import StoredInvoice


def record(conn: Conn, claimed: queue.Claimed, settlement: Settlement, now: datetime) -> bool:
    """Write `settlement` for `claimed` if its lease is still ours. False: the lease was lost
    (taken over after it expired) and nothing was written."""
    written = queue.settle(
        conn, claimed, settlement.status, now=now, event=settlement.event,
        fields=settlement.fields, payload=settlement.payload,
    )  # fmt: skip
    if written is None:
        return False
    if settlement.status is Status.ISSUED:
        _after_issue(conn, written, now)
    elif settlement.status is Status.REJECTED and written.kind is Kind.RED:
        _reversal_failed(conn, written, now)
    return True


log = logging.getLogger("kaipiao.worker")
RECORD_PATIENCE_S = 300.0  # how long an answer waits for a writable store before it is dropped


async def record_durably(
    db: Database,
    claimed: queue.Claimed,
    settlement: Settlement,
    now: datetime,
    *,
    patience_s: float = RECORD_PATIENCE_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """`record` in its own write transaction, tried again while the store is down, for up to
    `patience_s` (then the error propagates and the invoice's lease lapses: whoever claims it
    next queries the platform first). Any other error propagates at once."""
    deadline = time.monotonic() + patience_s
    delay = 0.2
    while True:
        try:
            return await db.write(lambda conn: record(conn, claimed, settlement, now))
        except Exception as exc:
            if not is_store_down(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("invoice %s: store unavailable while recording %s; retrying in %.1f s",
                        claimed.invoice.id, settlement.event, delay)  # fmt: skip
        await sleep(delay)
        delay = min(2 * delay, 2.0)


def _after_issue(conn: Conn, issued: StoredInvoice, now: datetime) -> None:
    if issued.kind is Kind.RED and issued.original_id:
        finish_red(conn, issued, now)
    elif issued.kind is Kind.BLUE and issued.cancel_requested:
        create_red(conn, issued, "invoicing_error", now)


def _reversal_failed(conn: Conn, red: StoredInvoice, now: datetime) -> None:
    if red.original_id is not None:
        release_red(conn, red, now)
