"""Merkle trees over the ledger, as RFC 9162 §2.1 defines them, with SHA3-256.

Leaves are the events' chain hashes; a leaf is hashed as H(0x00 || leaf) and an inner node as
H(0x01 || left || right), so a leaf can never pass for a node. The tree over n leaves splits at
the largest power of two below n. Inclusion and consistency proofs and their verification follow
RFC 9162 §2.1.3 and §2.1.4.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

_sha3 = hashlib.sha3_256


def _h(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def leaf_hash(leaf: bytes) -> bytes:
    return _h(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]): the tree head over `leaves` (already the leaf data, not yet leaf-hashed)."""
    if not leaves:
        return _h(b"")
    return _root_of_hashes([leaf_hash(leaf) for leaf in leaves])


def _root_of_hashes(level: list[bytes]) -> bytes:
    # Bottom-up pairing gives RFC 9162's tree: an odd node at the end of a level is carried up
    # unchanged, which is exactly the split at the largest power of two.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _subtree(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    return _root_of_hashes(list(hashes[start:end]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the audit path of leaf `index` in the tree over `leaves`."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    return _path(hashes, index, 0, len(hashes))


def _path(hashes: Sequence[bytes], m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(hashes, m, start, start + k), _subtree(hashes, start + k, end)]
    return [*_path(hashes, m - k, start + k, end), _subtree(hashes, start, start + k)]


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], head: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `path` prove `leaf` at `index` in the tree of `size` with `head`?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == head


def consistency_proof(leaves: Sequence[bytes], m: int) -> list[bytes]:
    """PROOF(m, D[n]): that the tree over the first m leaves is a prefix of the tree over all."""
    n = len(leaves)
    if not 0 < m <= n:
        raise ValueError(f"no consistency proof from {m} to {n}")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    return _subproof(hashes, m, 0, n, True)


def _subproof(hashes: Sequence[bytes], m: int, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [_subtree(hashes, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(hashes, m, start, start + k, whole), _subtree(hashes, start + k, end)]
    return [*_subproof(hashes, m - k, start + k, end, False), _subtree(hashes, start, start + k)]


def verify_consistency(
    first: int, second: int, first_head: bytes, second_head: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of size `first` with `first_head` a prefix of the tree of
    size `second` with `second_head`?"""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_head == second_head
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the old head is the first node
        path.insert(0, first_head)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_head and sr == second_head


class Frontier:
    """The tree's right edge (the roots of its perfect subtrees), grown one leaf at a time:
    the tree head of any prefix in O(log n) memory, which is how verification checks every
    checkpoint in one pass over the events."""

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (height, hash), tallest first

    def add(self, leaf: bytes) -> None:
        # leaf_hash and node_hash inlined: verification adds every event (measured: a third of
        # its time went to these calls).
        height, node = 0, _sha3(b"\x00" + leaf).digest()
        peaks = self._peaks
        while peaks and peaks[-1][0] == height:
            node = _sha3(b"\x01" + peaks.pop()[1] + node).digest()
            height += 1
        peaks.append((height, node))
        self.size += 1

    def to_json(self) -> str:
        peaks = [[height, node.hex()] for height, node in self._peaks]
        return json.dumps({"size": self.size, "peaks": peaks})

    @classmethod
    def from_json(cls, text: str) -> Frontier:
        data = json.loads(text)
        frontier = cls()
        frontier.size = int(data["size"])
        frontier._peaks = [(int(h), bytes.fromhex(node)) for h, node in data["peaks"]]
        return frontier

    def root(self) -> bytes:
        if not self._peaks:
            return _h(b"")
        node = self._peaks[-1][1]
        for _, peak in reversed(self._peaks[:-1]):
            node = node_hash(peak, node)
        return node
