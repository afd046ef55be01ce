"""Intake throughput: kaipiao's POST /v1/invoices against a minimal durable-insert endpoint.

Both servers run under uvicorn (uvloop, httptools, one process) pinned to core 0; wrk (one
thread, `--connections` keep-alive connections, a fresh order id per request) runs on core 1.
The baseline (bench/baseline_app.py) is raw Starlette doing one INSERT + commit of the body on the
same database with the same durability settings. Reported per database: requests/s, p50/p99
latency, and kaipiao / baseline (target ≥ 0.6).

    apt-get install wrk        # once
    .venv/bin/python bench/intake.py [--seconds 15] [--connections 32] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.databases import create_pg_database, drop_pg_database
from tests.factories import invoice_body
from tests.processes import clean_env, start_process

from bench import wrk

ROOT = Path(__file__).resolve().parents[1]
LUA = """
local body = [[%s]]
local n = 0
request = function()
  n = n + 1
  local b = string.gsub(body, "ORDERXXXX", string.format("%s-%%d", n))
  return wrk.format("POST", "/v1/invoices", %s, b)
end
"""


def lua(headers: dict[str, str], tag: str) -> Path:
    body = json.dumps(invoice_body("ORDERXXXX"), ensure_ascii=False)
    table = "{" + ", ".join(f'["{k}"]="{v}"' for k, v in headers.items()) + "}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % (body, tag, table))
    return Path(script.name)


def run_baseline(database: str, work: Path, connections: int, seconds: float) -> dict[str, float]:
    env = clean_env(BASELINE_DATABASE=database)
    command = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "bench.baseline_app:app",
               "--host", "127.0.0.1", "--port", "0", "--loop", "uvloop", "--http", "httptools",
               "--no-access-log", "--log-level", "info"]  # fmt: skip
    server = start_process(command, work / "baseline.log", r"running on (http://\S+)", env=env)
    try:
        script = lua({"Content-Type": "application/json"}, f"base-{uuid.uuid4().hex[:8]}")
        return wrk.run(server.url, script, connections, seconds)
    finally:
        server.stop()


def run_kaipiao(
    database_url: str | None, work: Path, connections: int, seconds: float
) -> dict[str, float]:
    data = work / f"kaipiao-{time.monotonic_ns()}"
    data.mkdir()
    store = ["--data-dir", str(data)] + (["--database-url", database_url] if database_url else [])
    flags = [*store, "--no-demo-seller", "--no-workers"]
    added = subprocess.run(
        [sys.executable, "-m", "kaipiao", "seller", "add", "--name", "bench", "--tax-id",
         "91310110666007217T", "--json", *store],
        capture_output=True, text=True, check=True, env=clean_env(),
    )  # fmt: skip
    key = json.loads(added.stdout)["api_key"]
    env = clean_env(KAIPIAO_INTAKE_RATE_PER_S="1000000", KAIPIAO_INTAKE_BURST="1000000",
                    KAIPIAO_LOG_LEVEL="warning")  # fmt: skip
    command = [
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-m",
        "kaipiao",
        "serve",
        "--port",
        "0",
        *flags,
    ]
    server = start_process(
        command, work / "kaipiao.log", r"kaipiao listening on (http://\S+)", env=env
    )
    try:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        return wrk.run(server.url, lua(headers, f"kp-{uuid.uuid4().hex[:8]}"), connections, seconds)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="intake benchmark")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/intake.py needs wrk: apt-get install wrk")
    print(f"{args.connections} connections, {args.seconds:.0f} s per run, server on one core")
    for database in args.databases.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            if database == "sqlite":
                base = run_baseline(
                    f"sqlite:{work / 'baseline.db'}", work, args.connections, args.seconds
                )
                ours = run_kaipiao(None, work, args.connections, args.seconds)
            else:
                name = f"kaipiao_bench_{uuid.uuid4().hex[:8]}"
                url = create_pg_database(name)
                try:
                    base = run_baseline(
                        url.replace("+asyncpg", ""), work, args.connections, args.seconds
                    )
                    ours = run_kaipiao(
                        url.replace("+asyncpg", ""), work, args.connections, args.seconds
                    )
                finally:
                    drop_pg_database(name)
        for name, r in (("baseline", base), ("kaipiao", ours)):
            print(f"  {database:<10} {name:<8} {r['rate']:7.0f} req/s   p50 {r['p50'] * 1000:6.1f} ms"
                  f"   p99 {r['p99'] * 1000:6.1f} ms   non-2xx {r['non2xx']:.0f}")  # fmt: skip
        ratio = ours["rate"] / base["rate"]
        print(f"  {database:<10} kaipiao / baseline = {ratio:.2f}  (target ≥ 0.60: "
              f"{'met' if ratio >= 0.6 else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
