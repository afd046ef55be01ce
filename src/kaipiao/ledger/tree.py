"""A Merkle tree kept in memory with all its levels: audit paths in O(log n) hashes-free steps.

`merkle.inclusion_proof` rebuilds the tree from the leaves on every call (O(n) hashing, after
reading every leaf from the store). A proof server answers many calls for one signed tree size,
so it builds this once per checkpoint (`kaipiao.services.tree_cache`) and reads paths off it.

The levels are built bottom-up, an odd last node carried up unchanged: the same tree as RFC
9162's split at the largest power of two (see `merkle._root_of_hashes`), so the paths equal
`merkle.inclusion_proof`'s (tested against it).
"""

from __future__ import annotations

from collections.abc import Sequence

from kaipiao.ledger.merkle import leaf_hash, node_hash, root


class Tree:
    """The tree over `leaves` (leaf data, not yet leaf-hashed), with every level kept."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        level = [leaf_hash(leaf) for leaf in leaves]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                paired.append(level[-1])
            self.levels.append(paired)
            level = paired

    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else root([])

    def path(self, index: int) -> list[bytes]:
        """The audit path of leaf `index`, as `merkle.inclusion_proof` gives it."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf {index} is not in a tree of {self.size}")
        path: list[bytes] = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path
