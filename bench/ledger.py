"""Ledger costs: verification speed (events/s) and intake's write path with and without the chain.

    .venv/bin/python bench/ledger.py [--events 300000] [--invoices 20000] [--databases sqlite,postgresql]

Verification: a chain of `--events` events is written (hashed exactly as kaipiao does), then
`kaipiao.services.verification.verify` walks it with a checkpoint at the end (target ≥ 300,000
events/s). Intake: `--invoices` invoice requests go through the batched intake unit of work
(`kaipiao.services.intake.store_new`, 32 concurrent callers, group commit) twice in one process,
once as shipped and once with the chain step replaced by a plain insert of the same events; the
ratio is the chain's cost (target ≥ 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sqlalchemy import insert, text
from tests.databases import create_pg_database, drop_pg_database
from tests.factories import SELLER_TAX_ID, invoice_body

from kaipiao.clock import utcnow
from kaipiao.ledger.chain import GENESIS, event_hash, time_text
from kaipiao.ledger.signing import Signer
from kaipiao.services import intake, ledger
from kaipiao.services.invoice_request import InvoiceCreate
from kaipiao.services.sellers import add_seller
from kaipiao.services.verification import verify
from kaipiao.store import events, pgraw
from kaipiao.store.database import Database
from kaipiao.store.events import canonical_json
from kaipiao.store.migrate import upgrade
from kaipiao.store.tables import ledger_events


def _lifecycle(seq: int) -> tuple[str, str, str]:
    """The events of one invoice's usual life, as kaipiao writes them (accepted, claimed,
    issued), with payloads of the shape and size the intake and the worker give them."""
    n, step = divmod(seq - 1, 3)
    invoice = f"inv_20261127013400{n:012d}"
    if step == 0:
        payload = {"order_id": f"ORD-2026-{n:08d}", "request_hash": f"{n:064x}",
                   "serial_no": f"20261127013400{n:012d}", "total": "1130.00", "warnings": []}  # fmt: skip
        return invoice, "accepted", canonical_json(payload)
    if step == 1:
        payload = {"attempt": 1, "from": "pending", "owner": "worker-1:4242:a1b2c3",
                   "to": "issuing", "token": f"{n:032x}"}  # fmt: skip
        return invoice, "claimed", canonical_json(payload)
    payload = {"attempt": 1, "from": "issuing", "invoice_number": f"{n:020d}",
               "outcome": "Issued", "phase": "submit", "to": "issued"}  # fmt: skip
    return invoice, "issued", canonical_json(payload)


async def _fill_chain(db: Database, count: int) -> None:
    now = utcnow()
    stamp = time_text(now)
    prev, seq, chunk = GENESIS, 0, 10_000
    while seq < count:
        rows = []
        for _ in range(min(chunk, count - seq)):
            seq += 1
            invoice, kind, payload = _lifecycle(seq)
            digest = event_hash(seq, invoice, "sel_0123456789abcdef", kind, stamp, payload, prev)
            rows.append({"invoice_id": invoice, "seller_id": "sel_0123456789abcdef", "type": kind,
                         "payload": payload, "created_at": now, "seq": seq, "prev_hash": prev,
                         "hash": digest})  # fmt: skip
            prev = digest
        await db.write(lambda conn, rows=rows: conn.execute(insert(ledger_events), rows))
    await db.write(lambda conn: conn.execute(
        text("UPDATE ledger_head SET seq = :seq, hash = :hash"), {"seq": seq, "hash": prev}))  # fmt: skip


async def verification(db: Database, count: int, key: Path) -> tuple[float, float]:
    """Events/s of the verification as shipped (the compiled walk) and of the pure-Python walk
    that replaces it where kaipiao was installed without a C compiler."""
    await _fill_chain(db, count)
    if db.dialect == "postgresql":  # what autovacuum does to a table this size in production
        await db.write(lambda conn: conn.exec_driver_sql("ANALYZE ledger_events"))
    signer = Signer.load_or_create(key)
    await ledger.make_checkpoint(db, signer, now=utcnow())
    rates = []
    for native in (True, False):
        started = time.perf_counter()
        verdict = await verify(db, signer.public, native=native)
        elapsed = time.perf_counter() - started
        if not verdict.ok or verdict.events != count:
            raise SystemExit(f"the benchmark chain does not verify: {verdict}")
        rates.append(count / elapsed)
    return rates[0], rates[1]


def _unchained_seal(conn: Any) -> int:
    """The same events inserted the same way, without the head, sequence numbers or hashes:
    the ledger switched off (through the driver, as the real seal does: sqlite3's cursor, or
    asyncpg with the rows as one JSON array)."""
    pending = events._pending(conn)
    if not pending:
        return 0
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.driver_connection.cursor()
        cursor.executemany(
            "INSERT INTO ledger_events (invoice_id, seller_id, type, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(e["invoice_id"], e["seller_id"], e["type"], e["payload"],
              e["created_at"].astimezone(UTC).replace(tzinfo=None).isoformat(sep=" "))
             for e in pending],
        )  # fmt: skip
    else:
        columns = ["invoice_id", "seller_id", "type", "payload", "created_at"]
        pgraw.execute(conn, pgraw.json_insert(ledger_events, columns), pgraw.rows_json(pending))
    pending.clear()
    return 0


async def intake_rate(db: Database, seller: Any, count: int, tag: str) -> float:
    models = [InvoiceCreate.model_validate(invoice_body(f"{tag}-{i}")) for i in range(count)]
    queue: asyncio.Queue[InvoiceCreate] = asyncio.Queue()
    for model in models:
        queue.put_nowait(model)

    async def caller() -> None:
        while not queue.empty():
            model = queue.get_nowait()
            await intake.submit_invoice(
                db, seller, model.to_domain(), model.canonical(), now=utcnow()
            )

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(32)))
    return count / (time.perf_counter() - started)


async def run(database: str, args: argparse.Namespace, work: Path) -> None:
    name = None
    if database == "sqlite":
        url = f"sqlite:///{work / 'ledger.db'}"
    else:
        name = f"kaipiao_bench_{uuid.uuid4().hex[:8]}"
        url = create_pg_database(name)
    db = Database(url)
    try:
        await upgrade(db)
        rate, python = await verification(db, args.events, work / f"key-{database}.pem")
        print(f"  {database:<10} verify      {rate:10,.0f} events/s  ({args.events:,} events; "
              f"target ≥ 300,000: {'met' if rate >= 300_000 else 'NOT met'}; pure-Python walk "
              f"{python:,.0f}/s, {rate / python:.1f}× slower)")  # fmt: skip
        seller = (await add_seller(db, name="bench", tax_id=SELLER_TAX_ID, now=utcnow())).seller
        real_seal = events.seal
        events.seal = _unchained_seal  # type: ignore[assignment]
        try:
            without = await intake_rate(db, seller, args.invoices, "off")
        finally:
            events.seal = real_seal  # type: ignore[assignment]
        with_chain = await intake_rate(db, seller, args.invoices, "on")
        ratio = with_chain / without
        print(f"  {database:<10} intake      {with_chain:10,.0f}/s with the chain, {without:,.0f}/s "
              f"without: {ratio:.2f} (target ≥ 0.80: {'met' if ratio >= 0.8 else 'NOT met'})")  # fmt: skip
    finally:
        await db.dispose()
        if name:
            drop_pg_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description="ledger benchmark")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--invoices", type=int, default=20_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"ledger: verification of {args.events:,} events; intake of {args.invoices:,} invoices")
    for database in args.databases.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(database, args, Path(tmp)))


if __name__ == "__main__":
    main()
