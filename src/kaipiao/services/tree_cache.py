"""The signed tree, kept between proof requests: `GET /v1/invoices/{id}/proof` and
`/v1/ledger/consistency` read only the events added since the last checkpoint they saw.

Before, each proof read every leaf hash up to the checkpoint from the store and rebuilt the
tree (issue 21: a read of the whole chain per call, which any seller could repeat). The cache
keeps the leaves read so far and the levels of the latest signed tree (`kaipiao.ledger.tree`);
a new checkpoint reads only the leaves after the cached ones, rebuilds the levels once, and is
served only if its root equals the signed root. Memory: about 96 bytes per event (the leaf and
its share of the levels), so ~100 MB for a million events; one cache per API process.
"""

from __future__ import annotations

import asyncio
import contextlib

from kaipiao.ledger.signing import Checkpoint
from kaipiao.ledger.tree import Tree
from kaipiao.services.errors import ServiceError
from kaipiao.store import ledger as repo
from kaipiao.store.database import Database


class TreeCache:
    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._tree: Tree | None = None
        self._lock = asyncio.Lock()

    async def leaves(self, db: Database, size: int) -> list[bytes]:
        """The first `size` leaves (reading only those not cached yet)."""
        async with self._lock:
            if len(self._leaves) < size:
                fresh: list[bytes] = []
                async with contextlib.aclosing(
                    repo.leaf_hashes(db, len(self._leaves), size)
                ) as chunks:
                    async for chunk in chunks:
                        fresh.extend(chunk)
                if len(self._leaves) + len(fresh) != size:
                    raise ServiceError(
                        f"the chain has {len(self._leaves) + len(fresh)} events up to {size}; "
                        "run `kaipiao ledger verify`", "ledger_broken",
                    )  # fmt: skip
                self._leaves.extend(fresh)
            return self._leaves[:size] if size < len(self._leaves) else self._leaves

    async def tree(self, db: Database, checkpoint: Checkpoint) -> Tree:
        """The tree of `checkpoint`, checked against its signed root."""
        tree = self._tree
        if tree is not None and tree.size == checkpoint.size:
            return tree
        tree = await asyncio.to_thread(Tree, await self.leaves(db, checkpoint.size))
        if tree.root().hex() != checkpoint.root:
            # Cached leaves that no longer match the store (restored from a backup?): read
            # them all again, once, before calling the ledger broken.
            self.forget()
            tree = await asyncio.to_thread(Tree, await self.leaves(db, checkpoint.size))
        if tree.root().hex() != checkpoint.root:
            self.forget()
            raise ServiceError(
                "the stored events do not match the signed checkpoint; run `kaipiao ledger "
                "verify`", "ledger_broken",
            )  # fmt: skip
        if self._tree is None or self._tree.size < tree.size:
            self._tree = tree
        return tree

    def forget(self) -> None:
        self._leaves, self._tree = [], None
