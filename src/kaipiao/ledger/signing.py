"""Signed checkpoints: a Merkle tree head, its size and time, signed with Ed25519.

The signed message is a short text note (version tag, size, root, time), so anyone can check a
checkpoint with the public key and nothing of kaipiao's. Keys are PEM files (PKCS#8 private,
SubjectPublicKeyInfo public); the key id is the first 16 hex digits of SHA-256 over the raw
public key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_NOTE = "kaipiao-checkpoint-v1\n{size}\n{root}\n{time}\n"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: `size` events, Merkle `root` (hex), `time` (ISO 8601 UTC)."""

    size: int
    root: str
    time: str
    key_id: str
    signature: str  # hex

    def note(self) -> bytes:
        return note(self.size, self.root, self.time)

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size, "root": self.root, "time": self.time,
            "key_id": self.key_id, "signature": self.signature,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Checkpoint:
        return cls(
            size=int(str(data["size"])), root=str(data["root"]), time=str(data["time"]),
            key_id=str(data["key_id"]), signature=str(data["signature"]),
        )  # fmt: skip


def note(size: int, root: str, time: str) -> bytes:
    return _NOTE.format(size=size, root=root, time=time).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public(pem: str | bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class Signer:
    """The ledger's signing key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def from_pem(cls, pem: bytes, where: str) -> Signer:
        """The key in PEM text; `where` names its source in the error if it is not one."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{where} does not hold an Ed25519 private key (PEM)")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> Signer:
        """The key in `path`, which must exist (a replica never invents a key of its own)."""
        return cls.from_pem(path.read_bytes(), str(path))

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """The key in `path`, created there (mode 0600) on first use."""
        if path.exists():
            return cls.load(path)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return cls(private)

    def sign(self, size: int, root: str, time: str) -> Checkpoint:
        signature = self.private.sign(note(size, root, time)).hex()
        return Checkpoint(size, root, time, self.key_id, signature)

    def sign_bytes(self, data: bytes) -> str:
        return self.private.sign(data).hex()


def verify_checkpoint(checkpoint: Checkpoint, public: Ed25519PublicKey) -> bool:
    return verify_bytes(checkpoint.note(), checkpoint.signature, public)


def verify_bytes(data: bytes, signature: str, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(bytes.fromhex(signature), data)
    except (InvalidSignature, ValueError):
        return False
    return True
