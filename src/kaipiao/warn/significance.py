"""Is a window's count of events more than chance? The one-sided binomial test the early warning
applies to failure and 429 shares.

A share over a 10-s window of ~100 calls is a count, not a measurement: at a calm failure rate
of 0.5%, 3 failures in a window (+3 points) happen by chance every few minutes, and a gate in
points cannot tell them from a real rise. The test asks instead how likely `k` or more events in
`n` calls would be if the true rate were still the baseline's: P(X ≥ k), X ~ Binomial(n, p0).
A share warns only when that tail probability is below `alpha` and at least `min_events` events
were seen — so one more failure is never enough, whatever the window's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p), summed in log space (no overflow for large n)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_nf = math.lgamma(n + 1)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(log_nf - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p
                        + (n - i) * log_q)  # fmt: skip
        total += term
        if i > n * p and term < total * 1e-12:
            break  # past the mode the terms only shrink
    return min(1.0, total)


@dataclass(frozen=True, slots=True)
class CountTest:
    """A share departs significantly from its baseline: at least `min_events` events, the share
    at least `ratio` × the baseline rate, and P(X ≥ k | n, p0) ≤ `alpha`, where the baseline
    rate p0 is never taken below `floor` (a baseline learnt as 0 from a quiet start would make
    any single event significant)."""

    alpha: float = 1e-4
    min_events: int = 5
    ratio: float = 2.0
    floor: float = 0.01

    def p_value(self, share: float, n: int, baseline: float) -> float:
        k = round(share * n)
        return binomial_tail(k, n, max(baseline, self.floor))

    def passes(self, share: float, n: int, baseline: float) -> bool:
        k = round(share * n)
        if k < self.min_events or share < self.ratio * max(baseline, self.floor):
            return False
        return self.p_value(share, n, baseline) <= self.alpha
