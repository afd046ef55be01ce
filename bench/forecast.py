"""The capacity forecast's error on history replayed from NAB's traffic series (issue 18).

Each series of `realTweets` (tweets per 5 minutes: a natural intake series) and `realTraffic`
(road occupancy, speed and travel time: a daily-shaped load) is turned into hourly totals (tweets)
or means (traffic), then replayed hour by hour: at each hour from the third day on, the forecast
(`kaipiao.warn.forecast`, the same hour yesterday × the day's growth) for 1, 6 and 24 hours ahead
is compared with what came. Error = mean |forecast − actual| / mean actual, summed over the
group's series; beside it the naive forecast "the last hour repeats".

    .venv/bin/python bench/forecast.py [--data ../shared/data/nab]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from kaipiao.warn.corpus import parse_time
from kaipiao.warn.forecast import evaluate, hourly

HORIZONS = (1, 6, 24)
GROUPS = {"realTweets": "sum", "realTraffic": "mean"}


def load(path: Path, how: str) -> list[float]:
    with path.open() as f:
        rows = [(parse_time(r["timestamp"]), float(r["value"])) for r in csv.DictReader(f)]
    rows.sort()
    return hourly(rows, how)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/data/nab"))
    args = parser.parse_args()
    print("group        horizon  series  points  forecast error  naive error")
    for group, how in GROUPS.items():
        series = [load(p, how) for p in sorted((args.data / "data" / group).glob("*.csv"))]
        for horizon in HORIZONS:
            model = naive = level = 0.0
            points = used = 0
            for hours in series:
                e = evaluate(hours, horizon)
                if e.points == 0:
                    continue
                mean_level = sum(hours[48:]) / max(1, len(hours) - 48)
                model += e.model_error * mean_level * e.points
                naive += e.naive_error * mean_level * e.points
                level += mean_level * e.points
                points += e.points
                used += 1
            print(
                f"{group:<12} {horizon:>4} h  {used:>6}  {points:>6}  "
                f"{model / level:>13.1%}  {naive / level:>10.1%}"
            )


if __name__ == "__main__":
    main()
