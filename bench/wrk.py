"""Running wrk and reading its report (shared by the benchmarks that use it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(text: str) -> float:
    """wrk's durations ("812.3us", "1.2ms", "3.4s", "1.1m") in seconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    return value * 60 if unit == "m" else value * _UNITS[unit]


def _find(pattern: str, report: str) -> str:
    match = re.search(pattern, report, re.MULTILINE)
    if match is None:
        raise ValueError(f"wrk report lacks {pattern!r}:\n{report}")
    return match.group(1)


def run(
    url: str, script: Path, connections: int, duration_s: float, core: int = 1
) -> dict[str, float]:
    """One wrk run (one thread, pinned to `core`): rate, mean/p50/p99 latency, non-2xx count."""
    report = subprocess.run(
        ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{duration_s:.0f}s",
         "--timeout", "30s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    errors = re.search(r"Socket errors: (.*)", report)
    return {
        "rate": float(_find(r"Requests/sec:\s+([\d.]+)", report)),
        "mean": seconds(_find(r"^\s+Latency\s+(\S+)", report)),
        "p50": seconds(_find(r"^\s+50%\s+(\S+)", report)),
        "p99": seconds(_find(r"^\s+99%\s+(\S+)", report)),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": errors.group(1) if errors else "none",  # type: ignore[dict-item]
    }
