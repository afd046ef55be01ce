"""Score a `timestamp,value` CSV row by row: each row is read, scored and written before the next
is read, so a file of any length (or a pipe) is scored online in constant memory."""

from __future__ import annotations

import csv
from typing import TextIO

from kaipiao.warn.corpus import parse_time
from kaipiao.warn.detector import Detector


def score_csv(source: TextIO, sink: TextIO, detector: Detector) -> int:
    """Write `timestamp,value,anomaly_score` for every input row; returns the number of rows."""
    reader = csv.DictReader(source)
    if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
        raise ValueError("expected a CSV with the columns timestamp,value")
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score"])
    rows = 0
    for row in reader:
        stamp, text = row["timestamp"], row["value"]
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"row {rows + 2}: value {text!r} is not a number") from None
        score = detector.update(parse_time(stamp), value)
        writer.writerow([stamp, text, f"{score:.6f}"])
        rows += 1
    return rows
