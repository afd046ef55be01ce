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


def test_cli_lists_commands_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "version" in result.output
    result = runner.invoke(app, ["version"])
    assert result.output.strip() == __version__
