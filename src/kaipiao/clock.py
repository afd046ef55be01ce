"""The one clock: timezone-aware UTC. Passed in wherever time matters, so tests control it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
