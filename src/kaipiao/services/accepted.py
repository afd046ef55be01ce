"""What intake answers: `Accepted`, and the idempotency key's stored copy of that answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kaipiao.store import idempotency
from kaipiao.store.database import Conn
from kaipiao.store.records import StoredInvoice


@dataclass(frozen=True, slots=True)
class Accepted:
    """What intake did: `created` (a new invoice) or not (the order's existing invoice, or the
    replay of an earlier request under the same Idempotency-Key, created as that one was), the
    invoice's public document, and the stored invoice where it was read (None on a replay).
    For an order split into several invoices, the document is part 1's (`part`, `parts`); the
    others are listed under the order id."""

    created: bool
    document: dict[str, Any]
    invoice: StoredInvoice | None = None


def complete_key(conn: Conn, seller_id: str, key: str | None, accepted: Accepted) -> None:
    """Store `accepted` as the answer of the Idempotency-Key `key` (if one was sent)."""
    if key is not None:
        idempotency.complete(
            conn, seller_id, key, created=accepted.created,
            body=json.dumps(accepted.document, ensure_ascii=False),
        )  # fmt: skip
