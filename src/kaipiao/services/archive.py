"""Archives for long-term retention: finished invoices and their ledger events, signed.

`write_archive` copies every finished invoice (issued, rejected, cancelled, reversed) accepted
before a date, and all of their ledger events, into `invoices.jsonl.gz` and `events.jsonl.gz`
with a `manifest.json`: counts, each file's SHA-256, the Merkle root over the archived events'
hashes (RFC 9162, as the ledger's checkpoints), signed with the ledger's Ed25519 key.
`verify_archive` checks all of it offline with the public key: signature, files, counts, every
event's hash from its fields, the root. Nothing is deleted from the store.

With a file store, each archived invoice's stored files (PDF, XML) are copied under
`files/{seller}/{invoice}.{kind}` and listed in the manifest like the other files; verifying
also checks each against the SHA3-256 its archived `files_stored` event recorded.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kaipiao.ledger import merkle
from kaipiao.ledger.chain import event_hash, time_text
from kaipiao.ledger.signing import Signer, key_id, verify_bytes
from kaipiao.services.errors import ServiceError
from kaipiao.services.ledger import event_document
from kaipiao.store import archive as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.events import canonical_json
from kaipiao.store.files import EVENT as FILES_EVENT
from kaipiao.store.filestore import FileStore, file_key

FORMAT = "kaipiao-archive-v1"
PAGE = 1000


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return time_text(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _invoice_page(conn: Conn, before: datetime, after_id: str) -> list[dict[str, Any]]:
    rows = repo.finished_page(conn, before=before, after_id=after_id, limit=PAGE)
    return [{k: _json_value(v) for k, v in row.items()} for row in rows]


def _events_of(conn: Conn, ids: list[str]) -> list[dict[str, Any]]:
    return [event_document(row) for row in repo.events_of(conn, ids)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(manifest: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"}).encode()


@dataclass
class Written:
    out: Path
    invoices: int
    events: int
    root: str


def _prepare(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.json").exists():
        raise ServiceError(f"{out} already holds an archive", "archive_exists")


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    with gzip.open(path, "at", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def _finish(out: Path, manifest: dict[str, Any], signer: Signer, copied: list[str]) -> None:
    names = ("invoices.jsonl.gz", "events.jsonl.gz")
    for name in names:
        (out / name).touch()
    manifest["files"] = {name: _sha256(out / name) for name in (*names, *copied)}
    manifest["signature"] = signer.sign_bytes(_canonical(manifest))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _copy_files(store: FileStore, out: Path, page: list[dict[str, Any]]) -> list[str]:
    """Copy the page's invoices' stored files into the archive; their archive names."""
    copied = []
    for row in page:
        for kind in sorted(json.loads(row["files"]) if row.get("files") else {}):
            key = file_key(row["seller_id"], row["id"], kind)
            content = store.get(key)
            if content is None:
                raise ServiceError(f"file {key} is missing from {store.describe()}",
                                   "file_missing")  # fmt: skip
            target = out / "files" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            copied.append(f"files/{key}")
    return copied


async def write_archive(
    db: Database, signer: Signer, *, before: datetime, out: Path, now: datetime,
    files: FileStore | None = None,
) -> Written:  # fmt: skip
    await asyncio.to_thread(_prepare, out)
    copied: list[str] = []
    leaves: list[tuple[int, bytes]] = []
    count, after = 0, ""
    while True:
        page = await db.read(partial(_invoice_page, before=before, after_id=after))
        if not page:
            break
        ids = [row["id"] for row in page]
        events = await db.read(partial(_events_of, ids=ids))
        await asyncio.to_thread(_append, out / "events.jsonl.gz", events)
        await asyncio.to_thread(_append, out / "invoices.jsonl.gz", page)
        if files is not None:
            copied += await asyncio.to_thread(_copy_files, files, out, page)
        leaves += [(event["seq"], bytes.fromhex(event["hash"])) for event in events]
        count += len(page)
        after = ids[-1]
    leaves.sort()
    root = merkle.root([leaf for _, leaf in leaves]).hex()
    manifest: dict[str, Any] = {
        "format": FORMAT, "before": time_text(before), "created_at": time_text(now),
        "invoices": count, "events": len(leaves), "merkle_root": root, "key_id": signer.key_id,
    }  # fmt: skip
    await asyncio.to_thread(_finish, out, manifest, signer, copied)
    return Written(out, count, len(leaves), root)


def _check_copies(directory: Path, event: dict[str, Any]) -> list[str]:
    """An archived `files_stored` event's files against the SHA3-256 it recorded."""
    problems = []
    payload = event["payload"]
    recorded = json.loads(payload) if isinstance(payload, str) else payload
    for kind, about in sorted(recorded.items()):
        name = f"files/{event['seller_id']}/{event['invoice_id']}.{kind}"
        path = directory / name
        if not path.exists():
            continue  # an invoice archived without its files (no file store given)
        if hashlib.sha3_256(path.read_bytes()).hexdigest() != about["sha3_256"]:
            problems.append(f"{name}: not the file whose SHA3-256 the ledger recorded")
    return problems


def verify_archive(directory: Path, public: Ed25519PublicKey) -> list[str]:
    """Problems found in an archive (empty: it verifies)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"manifest: {exc}"]
    if manifest.get("format") != FORMAT:
        return [f"manifest: unknown format {manifest.get('format')!r}"]
    if manifest.get("key_id") != key_id(public) or not verify_bytes(
        _canonical(manifest), str(manifest.get("signature", "")), public
    ):
        return ["manifest: the signature does not verify with this key"]
    problems = []
    for name, digest in manifest["files"].items():
        path = directory / name
        if not path.exists() or _sha256(path) != digest:
            problems.append(f"{name}: missing or changed since the archive was signed")
    if problems:
        return problems
    leaves: list[tuple[int, bytes]] = []
    with gzip.open(directory / "events.jsonl.gz", "rt", encoding="utf-8") as events:
        for line in events:
            e = json.loads(line)
            digest = event_hash(e["seq"], e["invoice_id"], e["seller_id"], e["type"], e["time"],
                                e["payload"], e["prev_hash"])  # fmt: skip
            if digest != e["hash"]:
                problems.append(f"event {e['seq']}: its fields do not match its hash")
            if e["type"] == FILES_EVENT:
                problems += _check_copies(directory, e)
            leaves.append((e["seq"], bytes.fromhex(e["hash"])))
    with gzip.open(directory / "invoices.jsonl.gz", "rt", encoding="utf-8") as rows:
        count = sum(1 for _ in rows)
    if count != manifest["invoices"] or len(leaves) != manifest["events"]:
        problems.append(
            f"counts: {count} invoices and {len(leaves)} events, the manifest says "
            f"{manifest['invoices']} and {manifest['events']}"
        )
    leaves.sort()
    if merkle.root([leaf for _, leaf in leaves]).hex() != manifest["merkle_root"]:
        problems.append("the events' Merkle root does not match the manifest")
    return problems
