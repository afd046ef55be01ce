"""The ledger's operations: signed checkpoints (the job `serve` runs, the key check a replica
does at start) and inclusion and consistency proofs. Verifying the whole chain is
`services/verification.py`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kaipiao.ledger import merkle
from kaipiao.ledger.chain import time_text
from kaipiao.ledger.signing import Checkpoint, Signer
from kaipiao.services.errors import NotFound, ServiceError
from kaipiao.services.tree_cache import TreeCache
from kaipiao.store import ledger as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.events import events_for
from kaipiao.store.invoices import get_invoice

log = logging.getLogger("kaipiao.ledger")
Progress = Callable[[int, int], None]
"""Called with (events checked, events in the chain) as verification goes."""


# -- checkpoints -------------------------------------------------------------------------------
async def _leaves(db: Database, size: int) -> list[bytes]:
    leaves: list[bytes] = []
    async with contextlib.aclosing(repo.leaf_hashes(db, 0, size)) as chunks:
        async for chunk in chunks:
            leaves.extend(chunk)
    if len(leaves) != size:
        raise ServiceError(
            f"the chain has {len(leaves)} events up to {size}; run `kaipiao ledger verify`",
            "ledger_broken",
        )
    return leaves


async def _frontier(db: Database, size: int) -> merkle.Frontier:
    """The Merkle frontier over the first `size` events, grown from the last checkpoint's stored
    frontier: a checkpoint hashes only the events since the previous one (computing each from
    the first event made checkpoints O(n) and a day's checkpoints O(n²))."""
    start = await db.read(repo.latest_frontier)
    frontier = merkle.Frontier.from_json(start[1]) if start and start[0] <= size else None
    if frontier is None:
        frontier = merkle.Frontier()
    async with contextlib.aclosing(repo.leaf_hashes(db, frontier.size, size)) as chunks:
        async for chunk in chunks:
            for leaf in chunk:
                frontier.add(leaf)
    if frontier.size != size:
        raise ServiceError(
            f"the chain has {frontier.size} events up to {size}; run `kaipiao ledger verify`",
            "ledger_broken",
        )
    return frontier


def publish(checkpoint: Checkpoint, path: Path) -> None:
    """Append a signed head to a file outside the database (one JSON object per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(checkpoint.to_json(), sort_keys=True) + "\n")
        out.flush()


async def make_checkpoint(
    db: Database, signer: Signer, *, now: datetime, published: Path | None = None
) -> Checkpoint | None:
    """Sign the tree head over every event so far (None if the last checkpoint covers them)."""
    size, _ = await db.read(repo.head)
    latest = await db.read(repo.latest_checkpoint)
    if size == 0 or (latest is not None and latest.size >= size):
        return None
    frontier = await _frontier(db, size)
    checkpoint = signer.sign(size, frontier.root().hex(), time_text(now))
    edge = frontier.to_json()
    if not await db.write(lambda conn: repo.add_checkpoint(conn, checkpoint, edge)):
        return None  # another process signed this size first
    if published is not None:
        await asyncio.to_thread(publish, checkpoint, published)
    log.info("ledger checkpoint %d %s", size, checkpoint.root)
    return checkpoint


async def check_signer(db: Database, signer: Signer) -> None:
    """Refuse a signing key other than the one the ledger's checkpoints are signed with: every
    replica signs under the deployment's one key, or `ledger verify` would fail them."""
    latest = await db.read(repo.latest_checkpoint)
    if latest is not None and latest.key_id != signer.key_id:
        raise ServiceError(
            f"this process's ledger signing key is {signer.key_id}, but the ledger's checkpoints "
            f"are signed with key {latest.key_id}: give every replica the deployment's key "
            "(KAIPIAO_LEDGER_KEY or KAIPIAO_LEDGER_KEY_FILE)",
            "ledger_key_mismatch",
        )


@dataclass
class CheckpointJob:
    """Signs a checkpoint every `every_s` seconds, sooner once `events` new events are in."""

    db: Database
    signer: Signer
    clock: Callable[[], datetime]
    every_s: float = 60.0
    events: int = 10_000
    published: Path | None = None
    poll_s: float = 1.0

    async def run(self, stop: asyncio.Event) -> None:
        waited = 0.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
            waited += self.poll_s
            try:
                size, _ = await self.db.read(repo.head)
                latest = await self.db.read(repo.latest_checkpoint)
                behind = size - (latest.size if latest else 0)
                due = behind >= self.events or waited >= self.every_s or stop.is_set()
                if behind > 0 and due:
                    await make_checkpoint(
                        self.db, self.signer, now=self.clock(), published=self.published
                    )
                    waited = 0.0
            except Exception:  # the next round tries again; the chain itself is unaffected
                log.exception("ledger checkpoint failed")


# -- proofs ------------------------------------------------------------------------------------
def event_document(row: Any) -> dict[str, Any]:
    """An event with every hashed field, as proofs and archives carry it."""
    return {
        "seq": row["seq"], "invoice_id": row["invoice_id"], "seller_id": row["seller_id"],
        "type": row["type"], "time": time_text(row["created_at"]), "payload": row["payload"],
        "prev_hash": row["prev_hash"], "hash": row["hash"],
    }  # fmt: skip


async def inclusion_proof(db: Database, invoice_id: str, seller_id: str,
                          cache: TreeCache | None = None) -> dict[str, Any]:  # fmt: skip
    """An invoice's events with their audit paths to the latest signed checkpoint; events not
    yet covered by a checkpoint are listed under `pending`. With a `cache` (the API's), only
    events since the cached tree are read."""

    def load(conn: Conn) -> tuple[bool, list[dict[str, Any]], Checkpoint | None]:
        owned = get_invoice(conn, invoice_id, seller_id=seller_id) is not None
        return owned, events_for(conn, invoice_id), repo.latest_checkpoint(conn)

    owned, rows, checkpoint = await db.read(load)
    if not owned:
        raise NotFound(f"no invoice {invoice_id}")
    if checkpoint is None:
        raise ServiceError("no checkpoint has been signed yet; retry shortly", "no_checkpoint")
    covered = any(row["seq"] <= checkpoint.size for row in rows)
    tree = await (cache or TreeCache()).tree(db, checkpoint) if covered else None
    proven, pending = [], []
    for row in rows:
        event = event_document(row)
        if tree is not None and row["seq"] <= checkpoint.size:
            path = tree.path(row["seq"] - 1)
            proven.append({**event, "path": [p.hex() for p in path]})
        else:
            pending.append(event)
    return {
        "invoice_id": invoice_id, "checkpoint": checkpoint.to_json(), "events": proven,
        "pending": pending,
    }  # fmt: skip


async def consistency_proof(
    db: Database, first: int, second: int, cache: TreeCache | None = None
) -> dict[str, Any]:
    """Two signed checkpoints and the proof that the first tree is a prefix of the second."""
    a = await db.read(lambda conn: repo.checkpoint_at(conn, first))
    b = await db.read(lambda conn: repo.checkpoint_at(conn, second))
    if a is None or b is None or first > second:
        raise NotFound(f"no checkpoints of sizes {first} ≤ {second}")
    leaves = await cache.leaves(db, second) if cache is not None else await _leaves(db, second)
    proof = merkle.consistency_proof(leaves, first)
    return {"first": a.to_json(), "second": b.to_json(), "proof": [p.hex() for p in proof]}
