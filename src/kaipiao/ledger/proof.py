"""Proof documents and their offline check: nothing but the document and the public key.

An inclusion proof document holds an invoice's events (every hashed field), for each the audit
path to a signed checkpoint, and the checkpoint. A consistency proof document holds two signed
checkpoints and the RFC 9162 proof that the first tree is a prefix of the second.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kaipiao.ledger import merkle
from kaipiao.ledger.chain import event_hash
from kaipiao.ledger.signing import Checkpoint, key_id, verify_checkpoint


def _checkpoint(doc: dict[str, Any], public: Ed25519PublicKey, name: str) -> Checkpoint:
    checkpoint = Checkpoint.from_json(doc[name])
    if checkpoint.key_id != key_id(public):
        raise ValueError(f"{name} was signed by key {checkpoint.key_id}, not by this key")
    if not verify_checkpoint(checkpoint, public):
        raise ValueError(f"{name}'s signature does not verify")
    return checkpoint


def check_inclusion(doc: dict[str, Any], public: Ed25519PublicKey) -> list[str]:
    """Problems found in an inclusion proof document (empty: it verifies)."""
    try:
        checkpoint = _checkpoint(doc, public, "checkpoint")
    except (KeyError, TypeError, ValueError) as exc:
        return [f"checkpoint: {exc}"]
    problems = []
    head = bytes.fromhex(checkpoint.root)
    events = doc.get("events") or []
    if not events:
        problems.append("the document proves no events")
    for event in events:
        try:
            seq = int(event["seq"])
            digest = event_hash(
                seq, event["invoice_id"], event["seller_id"], event["type"], event["time"],
                event["payload"], event["prev_hash"],
            )  # fmt: skip
            if digest != event["hash"]:
                problems.append(f"event {seq}: its fields do not match its hash")
                continue
            path = [bytes.fromhex(p) for p in event["path"]]
            if not merkle.verify_inclusion(
                bytes.fromhex(digest), seq - 1, checkpoint.size, path, head
            ):
                problems.append(f"event {seq}: not included in the checkpoint's tree")
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"event {event.get('seq', '?')}: malformed ({exc})")
    return problems


def check_consistency(doc: dict[str, Any], public: Ed25519PublicKey) -> list[str]:
    """Problems found in a consistency proof document (empty: the first tree is a prefix of
    the second, both signed by this key)."""
    try:
        first = _checkpoint(doc, public, "first")
        second = _checkpoint(doc, public, "second")
        proof = [bytes.fromhex(p) for p in doc["proof"]]
    except (KeyError, TypeError, ValueError) as exc:
        return [str(exc)]
    if not merkle.verify_consistency(
        first.size, second.size, bytes.fromhex(first.root), bytes.fromhex(second.root), proof
    ):
        return [f"the tree of {first.size} events is not a prefix of the tree of {second.size}"]
    return []
