"""`kaipiao bench` against a running `kaipiao serve`, and `kaipiao plan`, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.processes import kaipiao, start_serve


def test_bench_open_and_closed_loop_against_serve(tmp_path: Path) -> None:
    serve = start_serve(tmp_path, "--no-workers")
    try:
        key = kaipiao("seller", "demo-key", cwd=tmp_path).stdout.strip()
        done = kaipiao("bench", serve.url, "--api-key", key, "--rate", "25", "--duration", "4",
                       "--json", cwd=tmp_path)  # fmt: skip
        open_loop = json.loads(done.stdout)
        # An open loop sends on schedule, 25/s for 4 s: 100 requests (+1 at the edge), fewer
        # only if the machine stalls (the loop does not burst to catch up), never more.
        assert 0 < open_loop["sent"] <= 101
        assert open_loop["ok"] == open_loop["sent"]
        assert open_loop["statuses"] == {"202": open_loop["sent"]}
        assert 0 < open_loop["latency_ms"]["p50"] <= open_loop["latency_ms"]["p99"]
        closed = json.loads(kaipiao("bench", serve.url, "--api-key", key, "--concurrency", "4",
                                    "--duration", "3", "--json", cwd=tmp_path).stdout)  # fmt: skip
        # A closed loop runs as fast as the server answers; past the seller's intake rate limit
        # (200/s, burst 400) the excess is refused with 429, and the bench counts each answer.
        assert closed["sent"] > 0 and set(closed["statuses"]) <= {"202", "429"}
        assert sum(closed["statuses"].values()) == closed["sent"]
        assert closed["ok"] == closed["statuses"].get("202", 0) > 0
        table = kaipiao("bench", serve.url, "--api-key", key, "--rate", "10", "--duration", "2",
                        cwd=tmp_path).stdout  # fmt: skip
        assert "open loop at 10/s" in table and "p99" in table and "202: " in table
        wrong = kaipiao("bench", serve.url, "--api-key", "nope", "--rate", "5", "--duration",
                        "1", "--json", cwd=tmp_path, check=False)  # fmt: skip
        assert wrong.returncode == 1
        assert json.loads(wrong.stdout)["statuses"] == {"401": json.loads(wrong.stdout)["sent"]}
    finally:
        serve.stop()


def test_bench_needs_exactly_one_loop(tmp_path: Path) -> None:
    done = kaipiao("bench", "http://127.0.0.1:9", "--api-key", "k", cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "exactly one of --rate" in done.stderr


def test_plan_prints_its_reasoning_and_what_breaks_first(tmp_path: Path) -> None:
    out = kaipiao("plan", "--invoices-per-day", "1000000", "--peak-factor", "10",
                  "--latency-mean", "0.8", cwd=tmp_path).stdout  # fmt: skip
    assert "calls in flight, mean latency" in out and "Little: 116.3 × 0.8 s" in out
    assert "What breaks first:" in out
    assert "thread pool = peak QPS / 100 + 100" in out
    bad = kaipiao("plan", "--invoices-per-day", "0", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "invoices per day must be positive" in bad.stderr
