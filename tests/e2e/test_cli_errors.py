"""The CLI's one error handler (issue 23): a refused operator action, a domain rule, or a database
that does not answer ends as one `error: …` line on stderr and a non-zero exit, never a
traceback. Run in-process against both stores."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from kaipiao.cli import app
from kaipiao.clock import utcnow
from kaipiao.domain.errors import IllegalTransition
from kaipiao.domain.lifecycle import Status
from kaipiao.services import operations
from kaipiao.services.sellers import add_seller
from kaipiao.store import invoices as repo
from kaipiao.store.database import Database
from tests.engine_support import accept, events_of
from tests.factories import SELLER_TAX_ID


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


async def cli(*args: str) -> Result:
    """`run` from an async test: the command starts its own event loop, so in another thread."""
    return await asyncio.to_thread(run, *args)


def assert_one_error_line(result: Result, *fragments: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


async def _queued(database: Database, count: int = 1) -> list[str]:
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    return await accept(database, seller, count)


async def _to_attention(database: Database, invoice_id: str) -> None:
    def move(conn: Any) -> None:
        invoice = repo.get_invoice(conn, invoice_id, lock=True)
        assert invoice is not None
        assert repo.transition(conn, invoice, Status.ATTENTION, now=utcnow(), event="attention")

    await database.write(move)


async def test_requeue_of_an_invoice_not_in_attention_is_one_line(
    database: Database, db_url: str
) -> None:
    [invoice_id] = await _queued(database)
    result = await cli("invoices", "requeue", invoice_id, "--database-url", db_url)
    assert result.exit_code == 1
    assert_one_error_line(result, invoice_id, "not_in_attention")
    assert result.stdout == ""


async def test_requeue_reports_each_refused_id_and_requeues_the_others(
    database: Database, db_url: str
) -> None:
    [waiting, queued] = await _queued(database, 2)
    await _to_attention(database, waiting)
    result = await cli(
        "invoices", "requeue", "inv_missing", waiting, queued, "--database-url", db_url
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    refused = result.stderr.strip().splitlines()
    assert len(refused) == 2, result.stderr
    assert refused[0].startswith("error: inv_missing: ") and "(not_found)" in refused[0]
    assert refused[1].startswith(f"error: {queued}: ") and "(not_in_attention)" in refused[1]
    assert result.stdout.strip() == f"{waiting} requeued (issuing)"
    assert (await events_of(database, waiting))[-1] == "requeued"


async def test_requeue_of_an_attention_invoice_exits_0(database: Database, db_url: str) -> None:
    [invoice_id] = await _queued(database)
    await _to_attention(database, invoice_id)
    result = await cli("invoices", "requeue", invoice_id, "--database-url", db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{invoice_id} requeued (issuing)"
    shown = await cli("invoices", "show", invoice_id, "--database-url", db_url)
    assert shown.exit_code == 0, shown.output
    assert '"status": "issuing"' in shown.stdout and "requeued" in shown.stdout


async def test_show_of_an_unknown_invoice_is_one_line(db_url: str) -> None:
    result = await cli("invoices", "show", "inv_nope", "--database-url", db_url)
    assert result.exit_code == 1
    assert_one_error_line(result, "no invoice inv_nope", "(not_found)")


async def test_a_domain_error_from_any_command_is_one_line(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_: object, **__: object) -> None:
        raise IllegalTransition("cannot go from reversed to issuing")

    monkeypatch.setattr(operations, "show", refuse)
    result = await cli("invoices", "show", "inv_x", "--database-url", db_url)
    assert result.exit_code == 1
    assert_one_error_line(result, "cannot go from reversed to issuing", "(illegal_transition)")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["migrate"],
        ["invoices", "list"],
        ["invoices", "requeue", "inv_x"],
        ["seller", "list"],
        ["operator-key"],
    ],
)
def test_a_database_that_does_not_answer_is_one_line(command: list[str]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    result = run(*command, "--database-url", url)
    assert result.exit_code == 1
    assert_one_error_line(result, "the database is unavailable", "(store_unavailable)")


def test_a_refused_provider_secret_is_a_usage_error(tmp_path: Path) -> None:
    result = run(
        "seller", "add", "--name", "x", "--tax-id", SELLER_TAX_ID, "--platform", "nuonuo",
        "--app-key", "k", "--app-secret", "env:1-not-a-name", "--access-token", "t",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 2
    assert_one_error_line(result, "env:NAME", "(invalid_provider_account)")


def test_a_bug_is_not_hidden(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object, **__: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(operations, "show", broken)
    result = run("invoices", "show", "inv_x", "--database-url", db_url)
    assert result.exit_code == 1
    assert isinstance(result.exception, KeyError)


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    """The same through `python -m kaipiao`, where typer would print a rich traceback."""
    from tests.processes import kaipiao

    migrated = kaipiao("migrate", "--data-dir", str(tmp_path))
    assert "database at revision" in migrated.stdout
    done = kaipiao("invoices", "requeue", "inv_nope", "--data-dir", str(tmp_path), check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: inv_nope: no invoice inv_nope (not_found)"
    down = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    done = kaipiao("invoices", "show", "inv_nope", "--database-url", down, check=False)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: the database is unavailable: ")


def test_a_reader_that_goes_away_is_not_a_database_error() -> None:
    """`kaipiao plan … | head -1`: a closed pipe ends the command quietly, with status 0, and is
    never reported as an unavailable store (to Python it is a ConnectionError)."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "kaipiao", "plan", "--invoices-per-day", "50000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the plan is printed
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert b"unavailable" not in err
    assert b"Traceback" not in err
