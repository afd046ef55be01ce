"""The ledger's operations: checkpoints, proofs, and verification of the whole chain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kaipiao.ledger import merkle
from kaipiao.ledger.chain import GENESIS, Event, check_link, event_hash, time_text
from kaipiao.ledger.signing import Checkpoint, Signer, key_id, verify_checkpoint
from kaipiao.services.errors import NotFound, ServiceError
from kaipiao.services.recovery import lost_heads
from kaipiao.services.tree_cache import TreeCache
from kaipiao.store import ledger as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.events import events_for
from kaipiao.store.invoices import get_invoice
from kaipiao.store.recovery import restores

try:
    from kaipiao.ledger._walk import Walker
except ImportError:  # built without a C compiler: the pure-Python walk below does the same
    Walker = None  # type: ignore[assignment,misc]

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


# -- verification ------------------------------------------------------------------------------
@dataclass
class Verdict:
    """What `verify` found: counts, and the first problem (None if the ledger verifies)."""

    events: int = 0
    checkpoints: int = 0
    published: int = 0
    problem: str | None = None
    bad_seq: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def read_published(path: Path) -> list[Checkpoint]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Checkpoint.from_json(json.loads(line)) for line in lines if line.strip()]


NATIVE = Walker is not None
"""Whether the compiled verification loop is here (if not, `verify` adds a note saying so)."""


@dataclass
class _Walk:
    """How far a walk over the chain got: the next sequence number it expected, the last good
    hash, the tree heads at the requested sizes it reached, and the first bad event, if any, as
    (seq, invoice_id, seller_id, type, time, payload, prev_hash, hash)."""

    expected: int
    prev: str
    heads: dict[int, bytes]
    bad: tuple[Any, ...] | None


SEGMENT_MIN = 50_000
"""A chain at least twice this long is walked in segments, one per core (up to four)."""


async def _walk_native(
    db: Database, sizes: list[int], progress: Progress | None, total: int
) -> _Walk:
    """The compiled walk; a long chain in segments at once, each starting from the stored hash
    at its boundary and keeping its leaf hashes, which the first segment's tree then absorbs.
    If any segment finds a problem, or the boundaries are not where they should be, the chain
    is walked again in one piece, so that the first problem in chain order is the one named."""
    parts = min(os.cpu_count() or 1, 4, max(1, total // SEGMENT_MIN))
    bounds = [total * i // parts for i in range(parts)]
    starts = await db.read(lambda conn: repo.hashes_at(conn, bounds[1:]))
    if len(starts) != parts - 1:
        parts, bounds = 1, [0]
    walkers = [Walker(sizes)] + [
        Walker((), expected=after + 1, prev=starts[after], keep_leaves=True) for after in bounds[1:]
    ]
    done = [0] * parts

    def report(i: int) -> Callable[[int], None]:
        def seen(count: int) -> None:
            done[i] = count
            if progress is not None:
                progress(min(sum(done), total), total)

        return seen

    await asyncio.gather(*(
        repo.walk(db, w, report(i), after=bounds[i], upto=bounds[i + 1] if i + 1 < parts else None)
        for i, w in enumerate(walkers)
    ))  # fmt: skip
    clean = all(w.bad is None for w in walkers) and all(
        w.expected == end + 1 for w, end in zip(walkers, bounds[1:], strict=False)
    )
    if parts > 1 and not clean:
        whole, done[:] = Walker(sizes), [0] * parts
        await repo.walk(db, whole, report(0))
        return _Walk(whole.expected, whole.prev, whole.heads(), whole.bad)
    first, last = walkers[0], walkers[-1]
    for later in walkers[1:]:
        first.absorb(later.take_leaves())
    return _Walk(last.expected, last.prev, first.heads(), last.bad)


async def _walk_python(
    db: Database, sizes: list[int], progress: Progress | None, total: int
) -> _Walk:
    frontier = merkle.Frontier()
    heads: dict[int, bytes] = {}
    wanted = set(sizes)
    expected, prev = 1, GENESIS
    add, fromhex = frontier.add, bytes.fromhex
    async with contextlib.aclosing(repo.stream(db, repo.CHAIN_QUERY)) as chunks:
        async for rows in chunks:
            for seq, invoice_id, seller_id, type_, created, payload, prev_hash, digest in rows:
                when = time_text(created)
                linked = seq == expected and prev_hash == prev
                if not linked or digest != event_hash(
                    seq, invoice_id, seller_id, type_, when, payload, prev_hash
                ):
                    bad = (seq, invoice_id, seller_id, type_, when, payload, prev_hash, digest)
                    return _Walk(expected, prev, heads, bad)
                add(fromhex(digest))
                if seq in wanted:
                    heads[seq] = frontier.root()
                expected, prev = seq + 1, digest
            if progress is not None:
                progress(expected - 1, total)
    return _Walk(expected, prev, heads, None)


async def verify(
    db: Database,
    public: Ed25519PublicKey,
    *,
    published: list[Checkpoint] = (),  # type: ignore[assignment]
    progress: Progress | None = None,
    native: bool | None = None,
) -> Verdict:
    """Walk the chain from the first event: sequence, links and hashes; then every stored and
    published checkpoint against the recomputed tree and the public key. Names the first break,
    in chain order. `native`: use the compiled loop (default: when it is built)."""
    if native and not NATIVE:
        raise ServiceError("kaipiao was installed without its compiled ledger walker",
                           "native_walker_missing")  # fmt: skip
    verdict = Verdict()
    size, head_hash = await db.read(repo.head)
    stored = await db.read(repo.checkpoints)
    # Heads published before a restore over events it did not keep are evidence, not errors.
    published, verdict.notes = lost_heads(await db.read(restores), list(published))
    wanted: dict[int, list[tuple[str, Checkpoint]]] = {}
    for name, group in (("checkpoint", stored), ("published head", list(published))):
        for checkpoint in group:
            wanted.setdefault(checkpoint.size, []).append((name, checkpoint))

    def fail(seq: int | None, problem: str) -> Verdict:
        verdict.bad_seq, verdict.problem = seq, problem
        return verdict

    sizes = sorted(s for s in wanted if s >= 1)
    run = _walk_native if (NATIVE if native is None else native) else _walk_python
    walk = await run(db, sizes, progress, size)
    if not NATIVE:
        verdict.notes.append("walked in pure Python (this install has no compiled walker): "
                             "about 4× slower")  # fmt: skip
    expected, prev = walk.expected, walk.prev
    verdict.events = expected - 1
    for checked in sizes:  # every head the walk reached, in chain order, before its break
        if checked not in walk.heads:
            break
        for name, checkpoint in wanted.pop(checked):
            wrong = _check_head(name, checkpoint, walk.heads[checked], public)
            if wrong is not None:
                return fail(checked, wrong)
            verdict.checkpoints += name == "checkpoint"
            verdict.published += name == "published head"
    if walk.bad is not None:
        seq, invoice_id, seller_id, type_, when, payload, prev_hash, digest = walk.bad
        at = min(seq, expected) if isinstance(seq, int) else expected
        event = Event(seq, invoice_id, seller_id, type_, when, payload, prev_hash)
        problem = check_link(expected, prev, event, digest) or "its hash is wrong"
        return fail(at, f"event {at}: {problem}")
    if wanted:
        missing = min(wanted)
        names = " and ".join(name for name, _ in wanted[missing])
        return fail(
            expected,
            f"the chain ends at event {expected - 1}, but a {names} covers {missing} events "
            "(events were deleted from the end)",
        )
    if verdict.events != size or (size and prev != head_hash):
        return fail(
            expected,
            f"the chain ends at event {verdict.events} ({prev[:12]}…), but its head says "
            f"{size} ({head_hash[:12]}…)",
        )
    unsealed = await db.read(repo.unsealed)
    if unsealed:
        return fail(None, f"{unsealed} events have no sequence number (inserted outside the chain)")
    if not stored:
        verdict.notes.append("no checkpoint has been signed yet")
    elif stored[-1].size < size:
        verdict.notes.append(
            f"events {stored[-1].size + 1}–{size} are not yet covered by a signed checkpoint"
        )
    return verdict


def _check_head(
    name: str, checkpoint: Checkpoint, root: bytes, public: Ed25519PublicKey
) -> str | None:
    if checkpoint.root != root.hex():
        return (
            f"the {name} over {checkpoint.size} events does not match the events "
            "(the chain was rewritten)"
        )
    if checkpoint.key_id != key_id(public) or not verify_checkpoint(checkpoint, public):
        return f"the {name} over {checkpoint.size} events is not signed by this key"
    return None
