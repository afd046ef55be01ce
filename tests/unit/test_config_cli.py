import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from kaipiao import __version__
from kaipiao.cli import app
from kaipiao.config import Settings


def test_defaults_use_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path / 'kaipiao.db'}"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIPIAO_DATABASE_URL", "postgresql://127.0.0.1/test")
    monkeypatch.setenv("KAIPIAO_PORT", "9001")
    settings = Settings()
    assert settings.resolved_database_url() == "postgresql+asyncpg://127.0.0.1/test"
    assert settings.port == 9001


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="database_url"):
        Settings(database_url="mysql://x/y")
    with pytest.raises(ValidationError, match="port"):
        Settings(port=70000)
    with pytest.raises(ValidationError, match="not a database URL"):
        Settings(data_dir="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    assert Settings(data_dir="sqlite-data").data_dir == Path("sqlite-data")


# Every command and subcommand kaipiao has; a new one is added here (and to the docs).
COMMANDS = {
    "version": (), "serve": (), "worker": (), "migrate": (), "status": (), "reconcile": (),
    "operator-key": (), "purge": (), "sandbox": (), "plan": (), "bench": (), "drill": (),
    "backup": (), "restore": (),
    "seller": ("add", "mail", "list", "demo-key", "key", "webhook-secret"),
    "seller key": ("list", "rotate", "revoke"),
    "seller webhook-secret": ("rotate",),
    "operator": ("key", "add", "list", "disable"),
    "operator key": ("create", "list", "rotate", "revoke"),
    "invoices": ("list", "show", "requeue"),
    "ledger": ("verify", "checkpoint", "public-key", "check-proof", "check-consistency"),
    "archive": ("verify",),
    "warn": ("score", "evaluate"),
}  # fmt: skip


def listed(output: str) -> set[str]:
    """The command names a help page lists in its Commands panel."""
    panel = output.split("Commands", 1)[1] if "Commands" in output else ""
    return set(re.findall(r"^[│|] ([a-z][a-z-]*) ", panel, re.M))


def test_cli_lists_every_command_and_its_version() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"], terminal_width=120)
    assert top.exit_code == 0
    assert listed(top.output) == {group for group in COMMANDS if " " not in group}, top.output
    for group, subcommands in COMMANDS.items():
        if subcommands:
            page = runner.invoke(app, [*group.split(), "--help"], terminal_width=120)
            assert page.exit_code == 0 and listed(page.output) == set(subcommands), page.output
        else:
            assert runner.invoke(app, [*group.split(), "--help"]).exit_code == 0, group
    result = runner.invoke(app, ["version"])
    assert result.output.strip() == __version__
