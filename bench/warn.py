"""Early-warning detector cost: µs per value for each detector, beside a trivial baseline (a
running mean that returns 0) measured in the same run, since these machines are noisy.

    .venv/bin/python bench/warn.py [--values 100000] [--rounds 3]

The series is synthetic (a noisy daily shape with a level shift), so the benchmark needs no data
set; `kaipiao warn evaluate --data DIR` gives the cost on NAB itself.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kaipiao.warn.detector import Detector
from kaipiao.warn.registry import DETECTORS, make_detector


class RunningMean:
    """The baseline: the least a streaming detector can do per value."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0

    def update(self, timestamp: float, value: float) -> float:
        self.n += 1
        self.mean += (value - self.mean) / self.n
        return 0.0


def series(count: int) -> list[float]:
    rng = random.Random(18)
    values = [50 + 20 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 2) for i in range(count)]
    return [v + 40 if i > count * 0.8 else v for i, v in enumerate(values)]


def microseconds_per_value(detector: Detector, values: list[float]) -> float:
    update = detector.update
    started = time.perf_counter()
    for i, value in enumerate(values):
        update(i * 300.0, value)
    return 1e6 * (time.perf_counter() - started) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    values = series(args.values)
    names = ["baseline", *DETECTORS]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):  # interleaved, so a slow spell hits every detector alike
        for name in names:
            detector = RunningMean() if name == "baseline" else make_detector(name)
            samples[name].append(microseconds_per_value(detector, values))
    base = sorted(samples["baseline"])[len(samples["baseline"]) // 2]
    print(f"{args.values:,} values, median of {args.rounds} interleaved rounds")
    for name in names:
        median = sorted(samples[name])[len(samples[name]) // 2]
        print(f"  {name:15} {median:7.2f} µs/value  {median / base:6.1f}× the baseline")


if __name__ == "__main__":
    main()
