"""Series and labelled anomaly windows in the Numenta Anomaly Benchmark's layout.

A corpus directory holds `data/<group>/<series>.csv` (columns `timestamp,value`) and
`combined_windows.json`, mapping `<group>/<series>.csv` to `[[start, end], ...]` timestamps. NAB
itself keeps the windows under `labels/`; the shared copy keeps them beside `data/`, so both places
are looked at.
"""

from __future__ import annotations

import bisect
import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

WINDOWS_FILE = "combined_windows.json"


@dataclass(frozen=True)
class Series:
    """One labelled series: `windows` are inclusive row-index ranges of the anomaly windows."""

    name: str  # "<group>/<series>.csv", the key in combined_windows.json
    timestamps: list[float]  # POSIX seconds, UTC
    values: list[float]
    windows: list[tuple[int, int]]

    @property
    def group(self) -> str:
        return self.name.split("/", 1)[0]


def parse_time(text: str) -> float:
    """NAB timestamps ("2014-04-10 07:15:00" or with ".000000") carry no zone; they are read as
    UTC, which only matters for detectors that look at the time of day."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_csv(path: Path) -> tuple[list[str], list[float], list[float]]:
    """Rows of a `timestamp,value` file: the timestamps as written, as seconds, and the values."""
    texts: list[str] = []
    seconds: list[float] = []
    values: list[float] = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected the columns timestamp,value")
        for row in reader:
            texts.append(row["timestamp"])
            seconds.append(parse_time(row["timestamp"]))
            values.append(float(row["value"]))
    return texts, seconds, values


def window_rows(timestamps: list[float], spans: list[list[str]]) -> list[tuple[int, int]]:
    """Windows given as timestamps → inclusive row ranges (first row at or after the start, last
    row at or before the end)."""
    rows: list[tuple[int, int]] = []
    for start_text, end_text in spans:
        first = bisect.bisect_left(timestamps, parse_time(start_text))
        last = bisect.bisect_right(timestamps, parse_time(end_text)) - 1
        if first <= last:
            rows.append((first, last))
    return rows


def windows_path(root: Path) -> Path:
    for candidate in (root / WINDOWS_FILE, root / "labels" / WINDOWS_FILE):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{WINDOWS_FILE} not found in {root} nor in {root / 'labels'}")


def load_corpus(root: Path) -> list[Series]:
    """Every series listed in the windows file, in name order; a listed file that is missing is
    an error, since scoring without it would silently change the benchmark."""
    spans: dict[str, list[list[str]]] = json.loads(windows_path(root).read_text())
    corpus: list[Series] = []
    for name in sorted(spans):
        path = root / "data" / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in {WINDOWS_FILE} but missing")
        _, seconds, values = read_csv(path)
        corpus.append(Series(name, seconds, values, window_rows(seconds, spans[name])))
    return corpus
