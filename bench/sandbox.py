"""Sandbox throughput: issue calls/s with thousands of calls in flight under the `normal` profile.

The sandbox runs as its own process pinned to core 0; wrk (C, one thread, pinned to core 1) holds
`--connections` keep-alive connections, each sending its next issue call (a fresh serial every
time) as soon as the last is answered. Little's law bounds any server here: throughput ≤ calls in
flight / mean latency, so 2,000 calls/s at the `normal` profile's 800 ms mean needs at least 1,600
in flight. The report gives two ratios measured in the same run: `normal` against that bound (how
much the sandbox itself adds), and `normal` against `ideal` (no injected latency: the sandbox's
own CPU ceiling on this machine).

    apt-get install wrk        # once
    .venv/bin/python bench/sandbox.py [--seconds 15] [--connections 2500]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.factories import platform_invoice
from tests.processes import KAIPIAO, clean_env, start_process

from bench import wrk
from kaipiao.platform.wire import encode_invoice

LUA = """
local body = [[%s]]
local n = 0
request = function()
  n = n + 1
  local b = string.gsub(body, "SERIALXXXX", string.format("W%%019d", n))
  return wrk.format("POST", "/v1/invoices", {["Content-Type"]="application/json"}, b)
end
"""


def run(profile: str, connections: int, seconds: float, script: Path) -> dict[str, float]:
    log = Path(tempfile.gettempdir()) / f"kaipiao-bench-sandbox-{profile}.log"
    command = ["taskset", "-c", "0", *KAIPIAO, "sandbox", "--port", "0", "--profile", profile]
    sandbox = start_process(command, log, r"listening on (http://\S+)", env=clean_env())
    try:
        return wrk.run(sandbox.url, script, connections, seconds)
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="sandbox throughput benchmark")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=2500)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/sandbox.py needs wrk: apt-get install wrk")
    body = json.dumps(encode_invoice(platform_invoice(serial_no="SERIALXXXX")), ensure_ascii=False)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % body)
    results = {
        p: run(p, args.connections, args.seconds, Path(script.name)) for p in ("ideal", "normal")
    }
    normal, ideal = results["normal"], results["ideal"]
    bound = args.connections / 0.8
    print(f"{args.connections} connections (calls in flight), {args.seconds:.0f} s per run, "
          "sandbox on one core")  # fmt: skip
    for name, r in results.items():
        print(f"  {name:<7} {r['rate']:7.0f} calls/s   mean {r['mean'] * 1000:5.0f} ms   "
              f"p50 {r['p50'] * 1000:5.0f} ms   p99 {r['p99'] * 1000:5.0f} ms   "
              f"injected failures (non-2xx) {r['non2xx']:.0f}   socket errors: {r['socket_errors']}")  # fmt: skip
    print(
        f"  normal / Little's-law bound ({args.connections} / 0.8 s = {bound:.0f}/s): "
        f"{normal['rate'] / bound:.2f}"
    )
    print(f"  normal / ideal: {normal['rate'] / ideal['rate']:.2f}")
    met = normal["rate"] >= 2000 and args.connections >= 1000
    print(f"  target ≥ 2000 calls/s with ≥ 1000 in flight: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
