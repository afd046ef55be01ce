"""`kaipiao bench`: load any kaipiao URL and report throughput and latency percentiles."""

from __future__ import annotations

import asyncio
import json
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kaipiao.ops.loadgen import CONNECT_ERROR, TIMEOUT, LoadGenerator, Summary, Target, summarize

QUANTILES = (0.5, 0.9, 0.99, 0.999)


def _status_name(code: int) -> str:
    return {TIMEOUT: "timeout", CONNECT_ERROR: "connection error"}.get(code, str(code))


def summary_json(s: Summary) -> dict[str, object]:
    return {
        "sent": s.sent, "ok": s.ok, "seconds": round(s.seconds, 3), "rate": round(s.rate, 1),
        "statuses": {_status_name(k): v for k, v in sorted(s.statuses.items())},
        "latency_ms": {f"p{q * 100:g}": round(s.percentile(q) * 1000, 2) for q in QUANTILES},
    }  # fmt: skip


def run_bench(
    url: str,
    api_keys: list[str],
    rate: float | None,
    concurrency: int | None,
    duration: float,
    timeout: float,
    as_json: bool,
) -> int:
    """Run the load and print the result; exit status 1 when no request succeeded."""
    console = Console(stderr=as_json)
    # Order ids new to the seller on every run, or kaipiao answers with the existing invoice.
    target = Target(url, tuple(api_keys), timeout, order_prefix=f"B{time.time_ns():x}")
    summary = asyncio.run(_load(target, rate, concurrency, duration, console))
    if as_json:
        print(json.dumps(summary_json(summary)))
    else:
        mode = (
            f"open loop at {rate:g}/s"
            if rate is not None
            else f"closed loop, {concurrency} outstanding"
        )
        table = Table(title=f"{url}: {mode}, {duration:g} s")
        for column in ("sent", "ok", "req/s", *(f"p{q * 100:g}" for q in QUANTILES)):
            table.add_column(column, justify="right")
        table.add_row(str(summary.sent), str(summary.ok), f"{summary.rate:.1f}",
                      *(f"{summary.percentile(q) * 1000:.1f} ms" for q in QUANTILES))  # fmt: skip
        console.print(table)
        for code, count in sorted(summary.statuses.items()):
            console.print(f"  {_status_name(code)}: {count}")
    return 0 if summary.ok else 1


async def _load(
    target: Target, rate: float | None, concurrency: int | None, duration: float, console: Console
) -> Summary:
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
               TextColumn("sent {task.fields[sent]}  answered {task.fields[done]}"))  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("load", total=duration, sent=0, done=0)

        def progress(elapsed: float, sent: int, done: int) -> None:
            bar.update(task, completed=min(elapsed, duration), sent=sent, done=done)

        async with LoadGenerator(target, progress) as gen:
            if rate is not None:
                await gen.open_loop(lambda _t: rate, duration)
            else:
                assert concurrency is not None
                await gen.closed_loop(concurrency, duration)
            seconds = gen.elapsed
    return summarize(gen.samples, seconds)
