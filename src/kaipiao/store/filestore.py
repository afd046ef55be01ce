"""Where invoice files' bytes are kept: the `FileStore` port and its local-directory adapter.

Files are addressed by a key the caller builds (`file_key`: seller, invoice, kind), never by a
name from outside, so no request can reach a path it should not. The local store writes each
file 0600 in 0700 directories, through a temporary file and an atomic rename, so a reader sees
the old bytes or the new, never half a file.

An S3-compatible store (put/get by key in a bucket) fits the same three methods; it is not
built yet (docs/documents.md says why and what it needs).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


class FileStore(Protocol):
    def put(self, key: str, content: bytes) -> None:
        """Store `content` under `key`, replacing what was there."""
        ...

    def get(self, key: str) -> bytes | None:
        """The bytes under `key`, or None if there are none."""
        ...

    def describe(self) -> str:
        """Where the files are, for messages."""
        ...


def file_key(seller_id: str, invoice_id: str, kind: str) -> str:
    """The key of one invoice's file: `{seller}/{invoice}.{kind}` (ids are our own)."""
    for part in (seller_id, invoice_id, kind):
        if not _SAFE.fullmatch(part) or part.startswith("."):
            raise ValueError(f"unsafe file key part {part!r}")
    return f"{seller_id}/{invoice_id}.{kind}"


class LocalFileStore:
    """Files under one directory (created 0700 on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        seller, _, name = key.partition("/")
        return self.root / seller / name

    def put(self, key: str, content: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(scratch, path)
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def describe(self) -> str:
        return str(self.root)
