"""RFC 9162 Merkle trees: the tree head by its recursive definition, and every proof checked."""

from __future__ import annotations

import hashlib

import pytest

from kaipiao.ledger import merkle


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 written as the recursion it is (the module computes it bottom-up)."""
    if not leaves:
        return hashlib.sha3_256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha3_256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha3_256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


LEAVES = [f"event-{i}".encode() for i in range(70)]


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 64, 70])
def test_root_matches_the_recursive_definition(n: int) -> None:
    assert merkle.root(LEAVES[:n]) == _mth(LEAVES[:n])


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 33])
def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not(n: int) -> None:
    head = merkle.root(LEAVES[:n])
    for i in range(n):
        path = merkle.inclusion_proof(LEAVES[:n], i)
        assert merkle.verify_inclusion(LEAVES[i], i, n, path, head)
        assert not merkle.verify_inclusion(LEAVES[i] + b"x", i, n, path, head)
        if n > 1:
            assert not merkle.verify_inclusion(LEAVES[i], (i + 1) % n, n, path, head)
            bent = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
            assert not merkle.verify_inclusion(LEAVES[i], i, n, bent, head)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 7, 8, 11, 16, 21])
def test_every_consistency_proof_verifies_and_a_forked_history_does_not(n: int) -> None:
    second = merkle.root(LEAVES[:n])
    for m in range(1, n + 1):
        proof = merkle.consistency_proof(LEAVES[:n], m)
        first = merkle.root(LEAVES[:m])
        assert merkle.verify_consistency(m, n, first, second, proof)
        forked = merkle.root([*LEAVES[: m - 1], b"forged"])
        assert not merkle.verify_consistency(m, n, forked, second, proof)
        if m < n:
            assert not merkle.verify_consistency(m, n, first, merkle.root(LEAVES[: n - 1]), proof)


def test_proofs_refuse_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(LEAVES[:3], 4)
    assert not merkle.verify_inclusion(LEAVES[0], 5, 3, [], merkle.root(LEAVES[:3]))
    assert not merkle.verify_consistency(2, 3, b"", b"", [])


def test_the_frontier_gives_every_prefix_root() -> None:
    frontier = merkle.Frontier()
    assert frontier.root() == merkle.root([])
    for n, leaf in enumerate(LEAVES, start=1):
        frontier.add(leaf)
        assert frontier.root() == _mth(LEAVES[:n]), n


def test_a_frontier_survives_json_and_keeps_growing() -> None:
    frontier = merkle.Frontier()
    for leaf in LEAVES[:37]:
        frontier.add(leaf)
    again = merkle.Frontier.from_json(frontier.to_json())
    for leaf in LEAVES[37:]:
        again.add(leaf)
    assert again.size == len(LEAVES) and again.root() == _mth(LEAVES)
