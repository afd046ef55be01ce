"""What the engine reports as it works, for metrics; the engine knows no metrics library."""

from __future__ import annotations

from typing import Protocol


class EngineObserver(Protocol):
    def call(self, endpoint: str, region: str, outcome: str, seconds: float) -> None:
        """One platform call (`issue`, `issue_red`, `query`) and how it ended."""

    def retry(self, reason: str) -> None:
        """An invoice put back to be tried again later, and why."""

    def issued(self, waited_s: float) -> None:
        """An invoice issued, `waited_s` after it was accepted."""


class NoObserver:
    def call(self, endpoint: str, region: str, outcome: str, seconds: float) -> None:
        pass

    def retry(self, reason: str) -> None:
        pass

    def issued(self, waited_s: float) -> None:
        pass
