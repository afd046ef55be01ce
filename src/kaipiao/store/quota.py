"""A per-seller token bucket in the database, so the platform quota holds across every worker
process that shares it. Workers take tokens in small batches to keep this off the hot path."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from kaipiao.store.tables import seller_quota


def take_tokens(
    conn: Connection, *, seller_id: str, rate: float, burst: float, want: int, now: datetime
) -> tuple[int, float]:
    """Take up to `want` whole tokens from the seller's bucket: (granted, tokens left)."""
    query = select(seller_quota).where(seller_quota.c.seller_id == seller_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        # A new bucket starts with one token, not a full burst: workers starting together would
        # otherwise fire the whole burst at the platform at once.
        tokens = 1.0
        conn.execute(
            insert(seller_quota).values(seller_id=seller_id, tokens=tokens, updated_at=now)
        )
    else:
        elapsed = max(0.0, (now - row.updated_at).total_seconds())
        tokens = min(burst, row.tokens + elapsed * rate)
    granted = min(want, math.floor(tokens))
    conn.execute(
        update(seller_quota)
        .where(seller_quota.c.seller_id == seller_id)
        .values(tokens=tokens - granted, updated_at=now)
    )
    return granted, tokens - granted
