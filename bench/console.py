"""The console at scale: with `--invoices` (default 1,000,000) in PostgreSQL, do the invoice
search and the overview answer in under 200 ms?

A fresh database `kaipiao_console_bench` is migrated and given one seller and one invoice
through the API; the invoice is then copied with PostgreSQL's COPY (asyncpg
`copy_records_to_table`, not through the API) into `--invoices` rows spread over 30 days, ids and
serials in time order as kaipiao makes them: mostly issued, a backlog of 20,000 queued in the last
10 minutes, 1,000 in attention, 5,000 rejected, 3,000 issued in the last hour. Then a real
`kaipiao serve --no-workers` answers a signed-in operator's requests, each asked `--rounds` times;
the time is each request's wall time on loopback, an upper bound of the server's own time.
The COPY is followed by ANALYZE, as autovacuum does after a bulk load: the overview's finished
counts come from those statistics (kaipiao.store.overview.counts_by_status).

    .venv/bin/python bench/console.py [--invoices 1000000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.factories import invoice_body
from tests.processes import KAIPIAO, clean_env, start_serve

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NAME = "kaipiao_console_bench"
URL = f"postgresql://postgres@127.0.0.1:5432/{NAME}"
TAX_ID = "91310110666007217T"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
TARGET_MS = 200.0
PASSWORD = "bench password long enough"


def base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(BASE62[digit])
    return "".join(reversed(out))


def cli(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([*KAIPIAO, *args, "--database-url", URL], env=clean_env(), input=stdin,
                          capture_output=True, text=True, check=True, timeout=600)  # fmt: skip
    return done.stdout


async def recreate() -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {NAME}")
    await admin.close()


def plan(count: int, now: datetime) -> list[tuple[datetime, str]]:
    """(created_at, status) of every invoice, oldest first."""
    rng = random.Random(1)
    start = now - timedelta(days=30)
    span = (now - timedelta(minutes=10) - start).total_seconds()
    special = {"queued": 20_000, "attention": 1_000, "rejected": 5_000}
    rows: list[tuple[datetime, str]] = []
    old = count - special["queued"] - 3_000
    for _ in range(old):
        rows.append((start + timedelta(seconds=rng.random() * span), "issued"))
    rows.sort()
    picks = rng.sample(range(old), special["attention"] + special["rejected"])
    for n, index in enumerate(picks):
        rows[index] = (rows[index][0], "attention" if n < special["attention"] else "rejected")
    hour = [(now - timedelta(seconds=rng.random() * 3600), "issued") for _ in range(3_000)]
    recent = [(now - timedelta(seconds=rng.random() * 600), "queued")
              for _ in range(special["queued"])]  # fmt: skip
    return sorted(rows + hour + recent)


async def fill(count: int) -> None:
    conn = await asyncpg.connect(URL)
    template = dict(await conn.fetchrow("SELECT * FROM invoices LIMIT 1"))
    columns = list(template)
    now = datetime.now(UTC)
    rng = random.Random(2)
    records = []
    for n, (created, state) in enumerate(plan(count, now)):
        serial = base62(int(created.timestamp() * 1000), 8) + base62(rng.getrandbits(71), 12)
        row = dict(template)
        order = f"BENCH-{n}"
        row.update(
            id="inv_" + serial, serial_no=serial, order_id=order, order_key=order, status=state,
            created_at=created, updated_at=created, attempts=1 if state != "queued" else 0,
            buyer=f'{{"name": "买方{n % 50_000}", "tax_id": "9131{n:014d}"}}',
            issued_at=created + timedelta(seconds=1) if state == "issued" else None,
            invoice_number=f"2631{n:016d}" if state == "issued" else None,
            next_attempt_at=created if state == "queued" else None,
        )  # fmt: skip
        records.append(tuple(row[c] for c in columns))
    await conn.execute("DELETE FROM ledger_events; DELETE FROM webhook_deliveries; "
                       "DELETE FROM invoices")  # fmt: skip
    started = time.monotonic()
    await conn.copy_records_to_table("invoices", records=records, columns=columns)
    await conn.execute("ANALYZE invoices")
    print(f"copied {count:,} invoices in {time.monotonic() - started:.1f} s")
    await conn.close()


def measure(client: httpx.Client, path: str, rounds: int) -> dict[str, float]:
    client.get(path).raise_for_status()  # warm: plans, caches
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
    times.sort()
    return {"median": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1],
            "max": times[-1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(recreate())
    cli("migrate")
    seller = cli("seller", "add", "--name", "甲", "--tax-id", TAX_ID, "--json")
    key = json.loads(seller)["api_key"]
    cli("operator", "add", "--name", "bench", "--role", "viewer", "--password-stdin",
        stdin=PASSWORD + "\n")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="kaipiao-console-bench-"))
    serve = start_serve(work, "--database-url", URL, "--no-workers", "--no-demo-seller")
    try:
        body = invoice_body("TEMPLATE")
        answer = httpx.post(f"{serve.url}/v1/invoices", json=body,
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip
        answer.raise_for_status()
        asyncio.run(fill(args.invoices))
        report(serve.url, args.rounds, args.invoices)
    finally:
        serve.stop()


def report(base: str, rounds: int, count: int) -> None:
    with httpx.Client(base_url=base, timeout=30, follow_redirects=False) as client:
        token = client.get("/console/sign-in").text.split('name="csrf" value="')[1].split('"')[0]
        signed = client.post(
            "/console/sign-in", data={"name": "bench", "secret": PASSWORD, "csrf": token}
        )
        assert signed.status_code == 303, signed.text
        first = client.get("/console/invoices").text
        cursor = first.split("cursor=")[1].split('"')[0]
        today = datetime.now(UTC).date()
        paths: dict[str, Any] = {
            "overview": "/console",
            "search: order id": f"/console/invoices?q=BENCH-{count // 2}",
            "search: invoice number": f"/console/invoices?q=2631{count // 3:016d}",
            "search: buyer tax id": f"/console/invoices?q=9131{count // 4:014d}",
            "search: buyer name (20 of them)": "/console/invoices?q=买方777",
            "list: newest page": "/console/invoices",
            "list: next page (cursor)": f"/console/invoices?cursor={cursor}",
            "list: status=attention": "/console/invoices?status=attention",
            "list: status=rejected, 10 days ago": "/console/invoices?status=rejected&until="
            + (today - timedelta(days=10)).isoformat(),
            "attention queue": "/console/attention",
        }
        print(f"{count:,} invoices in PostgreSQL; {rounds} requests each, ms (loopback wall)")
        worst = 0.0
        for label, path in paths.items():
            found = measure(client, path, rounds)
            worst = max(worst, found["p95"])
            print(f"  {label:<38} median {found['median']:7.1f}  p95 {found['p95']:7.1f}  "
                  f"max {found['max']:7.1f}")  # fmt: skip
        verdict = "met" if worst < TARGET_MS else "NOT met"
        print(f"target: every p95 under {TARGET_MS:.0f} ms: {verdict} (worst p95 {worst:.1f})")


if __name__ == "__main__":
    main()
