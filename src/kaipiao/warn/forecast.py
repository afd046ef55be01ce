"""Capacity forecast: hourly intake ahead at the current trend, and when it crosses a limit.

The model is the simplest that respects a daily shape: the forecast for an hour is the median of
the same hour on up to 7 earlier days, times the growth of the last 24 h over the 24 h before
(bounded to 0.8–1.25 a day: seasonal naive with trend). With under two days of history it falls
back to a straight line through the last `short` hours (least squares), which knows no daily
shape and so says "the morning ramp goes on" — the forecast says which model it used. Hours are
counts per hour, oldest first.

`evaluate` replays a series hour by hour and measures the error of the forecast `h` hours ahead
(mean absolute error over the mean level, so a series of tweets and one of road speeds compare),
beside the naive forecast "the last hour repeats".
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 24


@dataclass(frozen=True, slots=True)
class Forecast:
    values: list[float]  # per hour, starting with the next
    model: str  # "daily" or "line"


def forecast(hours: list[float], ahead: int, short: int = 6, days: int = 7) -> Forecast:
    """The next `ahead` hours after `hours` (needs at least 2 values)."""
    if len(hours) >= 2 * DAY:
        now = len(hours) - 1
        last, before = sum(hours[-DAY:]), sum(hours[-2 * DAY : -DAY])
        # The day's growth, bounded: one odd day must not be compounded into the forecast.
        growth = min(1.25, max(0.8, last / before)) if before > 0 else 1.0
        values: list[float] = []
        for h in range(1, ahead + 1):
            # The same hour on up to `days` earlier days (their median: one odd day does not
            # move it), times the last day's growth, bounded, in proportion to the hours ahead.
            period = DAY * ((h - 1) // DAY + 1)
            same = sorted(hours[now + h - d * period] for d in range(1, days + 1)
                          if 0 <= now + h - d * period < len(hours))  # fmt: skip
            values.append(same[len(same) // 2] * growth ** (h / DAY))
        return Forecast(values, "daily")
    recent = hours[-short:]
    n = len(recent)
    if n < 2:
        return Forecast([recent[-1] if recent else 0.0] * ahead, "line")
    mean_x, mean_y = (n - 1) / 2, sum(recent) / n
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(recent)) / sum(
        (i - mean_x) ** 2 for i in range(n)
    )
    return Forecast([max(0.0, mean_y + slope * (n - 1 - mean_x + h)) for h in range(1, ahead + 1)],
                    "line")  # fmt: skip


def hours_until(values: list[float], limit: float) -> int | None:
    """The first forecast hour (1 = the next) whose value exceeds `limit`; None within range."""
    return next((h for h, v in enumerate(values, start=1) if v > limit), None)


def hours_until_backlog(values: list[float], capacity: float, slo_s: float) -> int | None:
    """The first hour by whose end arrivals beyond `capacity` (per hour) have piled up more
    than `slo_s` seconds of issuing: the oldest invoice then waits longer than the SLO."""
    excess = 0.0
    for h, v in enumerate(values, start=1):
        excess = max(0.0, excess + v - capacity)
        if excess > capacity / 3600 * slo_s:
            return h
    return None


@dataclass(frozen=True, slots=True)
class ForecastError:
    horizon: int
    points: int
    model_error: float  # mean |forecast - actual| / mean actual
    naive_error: float


def evaluate(hours: list[float], horizon: int, start: int = 2 * DAY) -> ForecastError:
    """Replay `hours`: at every hour from `start`, forecast `horizon` hours ahead from the past
    only and compare with what came."""
    model = naive = level = 0.0
    points = 0
    for t in range(start, len(hours) - horizon + 1):
        past = hours[:t]
        actual = hours[t + horizon - 1]
        model += abs(forecast(past, horizon).values[-1] - actual)
        naive += abs(past[-1] - actual)
        level += abs(actual)
        points += 1
    if points == 0 or level == 0:
        return ForecastError(horizon, points, float("nan"), float("nan"))
    return ForecastError(horizon, points, model / level, naive / level)


def hourly(rows: list[tuple[float, float]], how: str = "sum") -> list[float]:
    """POSIX-time `(t, value)` rows (sorted) to per-hour totals (`sum`) or means (`mean`),
    hours without a row counted as 0 (sum) or the previous hour (mean)."""
    if not rows:
        return []
    first = int(rows[0][0] // 3600)
    count = int(rows[-1][0] // 3600) - first + 1
    totals, seen = [0.0] * count, [0] * count
    for t, value in rows:
        i = int(t // 3600) - first
        totals[i] += value
        seen[i] += 1
    if how == "sum":
        return totals
    out: list[float] = []
    for total, n in zip(totals, seen, strict=True):
        out.append(total / n if n else (out[-1] if out else 0.0))
    return out
