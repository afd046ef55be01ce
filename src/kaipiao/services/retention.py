"""Retention: invoices leave the store only when archived, finished and older than the retention
period, and the purge itself is recorded in the ledger.

`purge` takes a signed archive (`kaipiao archive`) and deletes from the store the invoices it
holds that (1) were accepted before `now − retention_years`, (2) are unchanged since they were
archived (same status and last update), and (3) are not the original of a red invoice that stays.
Their webhook deliveries go with them, and idempotency records that expired before the cutoff.
The ledger's events are kept whole, so `kaipiao ledger verify` still walks the full chain: they
carry ids, serials, totals and outcomes, not the buyer's details or the lines, which the archive
holds. One `purged` event records the archive's Merkle root, the cutoff and a digest of the ids,
in the same transaction as the deletes.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kaipiao.ledger.chain import time_text
from kaipiao.services.archive import verify_archive
from kaipiao.services.errors import ServiceError
from kaipiao.store import retention as repo
from kaipiao.store.database import Conn, Database
from kaipiao.store.events import append_event

MINIMUM_YEARS = 6


def retention_cutoff(now: datetime, years: int) -> datetime:
    """`now` minus `years` calendar years (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


@dataclass(slots=True)
class Purged:
    cutoff: datetime
    archived: int = 0
    purged: int = 0
    too_recent: int = 0
    changed: int = 0
    still_referenced: int = 0
    expired_keys: int = 0


def _archived(directory: Path) -> dict[str, tuple[str, str, str]]:
    """Invoice id → (status, updated_at, created_at) as the archive holds them."""
    out: dict[str, tuple[str, str, str]] = {}
    with gzip.open(directory / "invoices.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            out[row["id"]] = (row["status"], row["updated_at"], row["created_at"])
    return out


def _eligible(
    conn: Conn, archived: dict[str, tuple[str, str, str]], cutoff: datetime, result: Purged
) -> list[str]:
    keep: list[str] = []
    for invoice_id, status, updated_at, created_at in repo.states(conn, list(archived)):
        archived_status, archived_update, _ = archived[invoice_id]
        if created_at >= cutoff:
            result.too_recent += 1
        elif status != archived_status or time_text(updated_at) != archived_update:
            result.changed += 1
        else:
            keep.append(invoice_id)
    chosen = set(keep)
    # Only the red invoices of the chosen ones are read, not the whole table.
    held = {original for original, red in repo.reds_of(conn, keep) if red not in chosen}
    result.still_referenced = len(held)
    return sorted(chosen - held)


def _delete(conn: Conn, ids: list[str], cutoff: datetime, manifest: dict[str, Any],
            now: datetime, result: Purged) -> None:  # fmt: skip
    repo.delete_invoices(conn, ids)
    result.expired_keys = repo.delete_keys_expired_before(conn, cutoff)
    append_event(
        conn, invoice_id=None, seller_id=None, type="purged", now=now,
        payload={
            "invoices": len(ids), "cutoff": time_text(cutoff),
            "archive_root": manifest["merkle_root"], "archive_before": manifest["before"],
            "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        },
    )  # fmt: skip


async def purge(
    db: Database,
    archive_dir: Path,
    public: Ed25519PublicKey,
    *,
    now: datetime,
    retention_years: int,
    dry_run: bool = False,
) -> Purged:
    """Delete what `archive_dir` holds and the retention period allows; see the module text."""
    if retention_years < MINIMUM_YEARS:
        raise ServiceError(
            f"retention must be at least {MINIMUM_YEARS} years", "retention_too_short"
        )
    problems = await asyncio.to_thread(verify_archive, archive_dir, public)
    if problems:
        raise ServiceError(f"the archive does not verify: {problems[0]}", "archive_invalid")
    manifest = json.loads((archive_dir / "manifest.json").read_text())
    archived = await asyncio.to_thread(_archived, archive_dir)
    result = Purged(cutoff=retention_cutoff(now, retention_years), archived=len(archived))

    def work(conn: Conn) -> None:
        ids = _eligible(conn, archived, result.cutoff, result)
        result.purged = len(ids)
        if ids and not dry_run:
            _delete(conn, ids, result.cutoff, manifest, now, result)

    if dry_run:
        await db.read(work)
    else:
        await db.write(work)
    return result
