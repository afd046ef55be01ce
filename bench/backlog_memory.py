"""Worker memory with a huge backlog: does the worker's resident memory stay flat?

A backlog of `--backlog` invoices (default 1,000,000) is written straight into a SQLite store
(one template invoice copied by SQL, each copy with its own id, serial and order), then a
`kaipiao worker` issues against the sandbox (`ideal` profile) under a seller quota of `--quota`
calls/s for `--seconds`, its RSS sampled every 5 s. Flat means the last sample is within
`--tolerance` (default 10%) of the sample a third of the way in (by then SQLite's page caches,
16 MiB a connection, are full: before that, RSS grows as they fill).

    .venv/bin/python bench/backlog_memory.py [--backlog 1000000] [--seconds 180] [--quota 300]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.factories import invoice_body
from tests.processes import KAIPIAO, clean_env, start_process

TAX_ID = "91310110666007217T"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def fill(db: Path, count: int) -> None:
    """Copy the one accepted invoice `count - 1` times, in SQL (minutes, not hours)."""
    conn = sqlite3.connect(db)
    template = conn.execute("SELECT * FROM invoices").fetchone()
    columns = [d[0] for d in conn.execute("SELECT * FROM invoices").description]
    assert template is not None, "no template invoice"
    fresh = {"id": "'inv_M' || printf('%015d', n)", "serial_no": "'M' || printf('%019d', n)",
             "order_id": "'M-' || n", "order_key": "'M-' || n"}  # fmt: skip
    select = ", ".join(fresh.get(c, c) for c in columns)
    started = time.monotonic()
    chunk = 100_000
    for low in range(1, count, chunk):
        high = min(count, low + chunk)
        conn.execute(
            f"WITH RECURSIVE seq(n) AS (SELECT {low} UNION ALL SELECT n + 1 FROM seq "
            f"WHERE n < {high - 1}) INSERT INTO invoices ({', '.join(columns)}) "
            f"SELECT {select} FROM seq, (SELECT * FROM invoices LIMIT 1)"
        )
        conn.commit()
        print(f"  backlog {high:,} ({time.monotonic() - started:.0f} s)", flush=True)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="worker memory with a large backlog")
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--quota", type=float, default=300.0)
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = ["--data-dir", str(work)]
        env = clean_env(KAIPIAO_LOG_LEVEL="warning")
        added = subprocess.run([*KAIPIAO, "seller", "add", "--name", "bench", "--tax-id", TAX_ID,
                                "--quota", str(args.quota), "--json", *store],
                               capture_output=True, text=True, check=True, env=env)  # fmt: skip
        key = json.loads(added.stdout)["api_key"]
        api = start_process([*KAIPIAO, "serve", "--port", "0", "--no-workers", "--no-demo-seller",
                             "--platform-url", "http://127.0.0.1:9", *store],
                            work / "api.log", r"kaipiao listening on (http://\S+)", env=env)  # fmt: skip
        try:
            import httpx

            answer = httpx.post(f"{api.url}/v1/invoices", json=invoice_body("TEMPLATE"),
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            assert answer.status_code == 202, answer.text
        finally:
            api.stop()
        print(f"filling a backlog of {args.backlog:,} …", flush=True)
        fill(work / "kaipiao.db", args.backlog)
        sandbox = start_process([*KAIPIAO, "sandbox", "--port", "0", "--profile", "ideal"],
                                work / "sandbox.log", r"listening on (http://\S+)")  # fmt: skip
        worker = start_process([*KAIPIAO, "worker", "--platform-url", sandbox.url, *store],
                               work / "worker.log", r"kaipiao worker (\S+) issuing", env=env)  # fmt: skip
        samples: list[tuple[float, float]] = []
        try:
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                time.sleep(5)
                samples.append((time.monotonic() - started, rss_mib(worker.process.pid)))
                print(f"  {samples[-1][0]:5.0f} s  RSS {samples[-1][1]:7.1f} MiB", flush=True)
            issued = sqlite3.connect(work / "kaipiao.db").execute(
                "SELECT COUNT(*) FROM invoices WHERE status = 'issued'").fetchone()[0]  # fmt: skip
        finally:
            worker.stop()
            sandbox.stop()
    # Warm-up: the first third, while SQLite's page caches (16 MiB a connection) fill up.
    warm = samples[len(samples) // 3][1]
    last, peak = samples[-1][1], max(rss for _, rss in samples)
    growth = (last - warm) / warm
    print(f"backlog {args.backlog:,}: issued {issued:,} in {args.seconds:.0f} s; worker RSS "
          f"{warm:.1f} MiB after warm-up, {last:.1f} MiB at the end, peak {peak:.1f} MiB "
          f"(growth {growth:+.1%}; flat if within ±{args.tolerance:.0%}: "
          f"{'yes' if abs(growth) <= args.tolerance else 'NO'})")  # fmt: skip


if __name__ == "__main__":
    main()
