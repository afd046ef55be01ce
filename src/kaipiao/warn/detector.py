"""What every early-warning detector is: it sees one value at a time, with its time, and returns
an anomaly score in [0, 1] computed from that value and the values before it, never later ones.

A detector keeps its own state; one detector instance follows one series.
"""

from __future__ import annotations

from typing import Protocol


class Detector(Protocol):
    def update(self, timestamp: float, value: float) -> float:
        """Score `value` (seen at `timestamp`, POSIX seconds) against the past, then learn it."""
        ...
