"""Fixtures of the end-to-end tier: kaipiao driven from outside, as an operator runs it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.processes import Running, start_sandbox


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The CLI flags of an empty store: a fresh SQLite file, or the session's PostgreSQL
    database emptied (not migrated: the caller runs `kaipiao migrate` as an operator does)."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("store") / "kaipiao.db"
        return ["--database-url", f"sqlite:///{path}"]
    from tests.databases import _run, truncate_all

    url: str = request.getfixturevalue("pg_session_url")
    _run(truncate_all(url))
    return ["--database-url", url.replace("+asyncpg", "")]


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[Running]:
    running = start_sandbox("--profile", "ideal", "--seed", "1")
    yield running
    running.stop()


@pytest.fixture
def sandbox(sandbox_process: Running) -> Running:
    """The shared sandbox process, reset to an empty, fault-free platform."""
    httpx.post(f"{sandbox_process.url}/_sandbox/reset", params={"seed": "1"}).raise_for_status()
    return sandbox_process


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "full_length: a drill at its documented length; runs only when selected "
        "with `-m full_length`",
    )  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Full-length drills take about a minute and a half each: CI runs the short ones, and the
    full ones run when a marker expression names them."""
    if "full_length" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("full_length") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
