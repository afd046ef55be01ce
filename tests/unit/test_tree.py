"""The kept tree's audit paths equal the rebuilt tree's, for every size and leaf."""

from __future__ import annotations

from kaipiao.ledger import merkle
from kaipiao.ledger.tree import Tree


def test_paths_and_roots_equal_the_rebuilt_trees() -> None:
    for size in range(1, 70):
        leaves = [f"leaf-{i}".encode() for i in range(size)]
        tree = Tree(leaves)
        assert tree.root() == merkle.root(leaves)
        for index in range(size):
            assert tree.path(index) == merkle.inclusion_proof(leaves, index), (size, index)
