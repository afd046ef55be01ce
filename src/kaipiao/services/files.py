"""An invoice's files for its seller, and the check that stored files are the ledger's.

A file is served only from the seller's own invoice, only once it is stored; its ETag is the
SHA3-256 the ledger recorded. `check_files` reads every stored file back and compares it with
its `files_stored` event: a file whose bytes changed (or that is gone) is named.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from functools import partial
from typing import Any

from kaipiao.domain.sellers import Seller
from kaipiao.services.errors import NotFound
from kaipiao.services.invoices import get_invoice
from kaipiao.store import files as records
from kaipiao.store.database import Database
from kaipiao.store.documents import MEDIA_TYPES
from kaipiao.store.filestore import FileStore, file_key


class FilesNotReady(NotFound):
    """The invoice exists but its file is not stored yet (not issued, or still being fetched)."""

    code = "files_not_ready"


@dataclass(frozen=True, slots=True)
class ServedFile:
    content: bytes
    media_type: str
    sha3_256: str
    filename: str


async def invoice_file(
    db: Database, store: FileStore, seller: Seller, invoice_id: str, kind: str
) -> ServedFile:
    """The seller's invoice's `kind` file (pdf or xml); NotFound for an unknown invoice or
    kind, FilesNotReady while it is not stored."""
    if kind not in MEDIA_TYPES:
        raise NotFound(f"no file kind {kind!r}: pdf or xml")
    invoice = await get_invoice(db, seller, invoice_id)
    about = (invoice.files or {}).get(kind)
    if about is None:
        raise FilesNotReady(f"the {kind} of invoice {invoice_id} is not stored yet")
    content = await asyncio.to_thread(store.get, file_key(invoice.seller_id, invoice.id, kind))
    if content is None:
        raise FilesNotReady(f"the {kind} of invoice {invoice_id} is missing from the file store")
    name = f"{invoice.invoice_number or invoice.id}.{kind}"
    return ServedFile(content, MEDIA_TYPES[kind], str(about["sha3_256"]), name)


async def check_files(db: Database, store: FileStore) -> tuple[int, list[str]]:
    """How many stored files were checked, and one line per file whose bytes are not those
    whose SHA3-256 the ledger recorded (changed or missing). Pages through the events."""
    checked = 0
    problems: list[str] = []
    after = 0
    while True:
        page = await db.read(partial(records.recorded_hashes, after_id=after))
        if not page:
            return checked, problems
        for event_id, invoice_id, seller_id, kinds in page:
            after = event_id
            for kind, about in sorted(kinds.items()):
                checked += 1
                problem = await _check_one(store, file_key(seller_id, invoice_id, kind), about)
                if problem is not None:
                    problems.append(problem)


async def _check_one(store: FileStore, key: str, about: dict[str, Any]) -> str | None:
    content = await asyncio.to_thread(store.get, key)
    if content is None:
        return f"file {key} in {store.describe()} is missing"
    digest = hashlib.sha3_256(content).hexdigest()
    if digest != about["sha3_256"]:
        return (f"file {key} in {store.describe()} changed: SHA3-256 {digest}, "
                f"the ledger recorded {about['sha3_256']}")  # fmt: skip
    return None
