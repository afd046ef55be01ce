"""Retention on SQLite and PostgreSQL: only archived, finished, old-enough invoices are purged,
the purge is a ledger event, and the ledger still verifies whole afterwards."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from kaipiao.clock import utcnow
from kaipiao.config import Settings
from kaipiao.ledger.signing import Signer
from kaipiao.services import archive, cancellation, ledger, verification
from kaipiao.services.errors import ServiceError
from kaipiao.services.retention import purge, retention_cutoff
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.tables import invoices, ledger_events
from tests.engine_support import accept
from tests.factories import SELLER_TAX_ID

ELEVEN_YEARS = timedelta(days=366 * 11)


async def count_invoices(db: Database) -> int:
    return int(await db.read(lambda c: c.execute(select(func.count()).select_from(invoices)).scalar_one()))  # fmt: skip


async def archived_setup(db: Database, tmp_path: Path) -> tuple[Signer, Path, list[str]]:
    seller = (await add_seller(db, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    ids = await accept(db, seller, 6, prefix="P")
    for invoice_id in ids[:4]:  # finished; the last two stay queued and are not archived
        await cancellation.cancel_invoice(db, seller, invoice_id, now=utcnow())
    signer = Signer.load_or_create(tmp_path / "key.pem")
    out = tmp_path / "archive"
    await archive.write_archive(db, signer, before=utcnow() + timedelta(minutes=1), out=out,
                                now=utcnow())  # fmt: skip
    return signer, out, ids


async def test_purge_removes_archived_old_invoices_and_records_it(
    database: Database, tmp_path: Path
) -> None:
    signer, out, _ = await archived_setup(database, tmp_path)
    later = utcnow() + ELEVEN_YEARS
    dry = await purge(database, out, signer.public, now=later, retention_years=10, dry_run=True)
    assert (dry.archived, dry.purged) == (4, 4) and await count_invoices(database) == 6
    done = await purge(database, out, signer.public, now=later, retention_years=10)
    assert done.purged == 4
    assert await count_invoices(database) == 2  # the two unfinished, never archived, stay
    types = await database.read(lambda c: c.execute(
        select(ledger_events.c.type, ledger_events.c.payload).order_by(ledger_events.c.id)).all())  # fmt: skip
    last_type, payload = types[-1]
    assert last_type == "purged"
    recorded = json.loads(payload)
    assert recorded["invoices"] == 4
    assert (
        recorded["archive_root"] == json.loads((out / "manifest.json").read_text())["merkle_root"]
    )
    # The chain is whole: every event, the purge included, still verifies.
    await ledger.make_checkpoint(database, signer, now=utcnow())
    verdict = await verification.verify(database, signer.public)
    assert verdict.ok, verdict
    assert archive.verify_archive(out, signer.public) == []  # the archive keeps what went
    again = await purge(database, out, signer.public, now=later, retention_years=10)
    assert again.purged == 0  # nothing left to purge: no second event
    assert (await database.read(lambda c: c.execute(
        select(func.count()).where(ledger_events.c.type == "purged")).scalar_one())) == 1  # fmt: skip


async def test_nothing_younger_than_the_retention_period_goes(
    database: Database, tmp_path: Path
) -> None:
    signer, out, _ = await archived_setup(database, tmp_path)
    done = await purge(database, out, signer.public, now=utcnow(), retention_years=10)
    assert (done.purged, done.too_recent) == (0, 4)
    assert await count_invoices(database) == 6
    with pytest.raises(ServiceError, match="at least 6 years"):
        await purge(database, out, signer.public, now=utcnow() + ELEVEN_YEARS, retention_years=5)


async def test_an_archive_that_does_not_verify_purges_nothing(
    database: Database, tmp_path: Path
) -> None:
    signer, out, _ = await archived_setup(database, tmp_path)
    rows = gzip.decompress((out / "invoices.jsonl.gz").read_bytes())
    (out / "invoices.jsonl.gz").write_bytes(gzip.compress(rows.replace(b"P-1", b"P-8", 1)))
    with pytest.raises(ServiceError, match="does not verify"):
        await purge(database, out, signer.public, now=utcnow() + ELEVEN_YEARS, retention_years=10)
    other = Signer.load_or_create(tmp_path / "other.pem")
    with pytest.raises(ServiceError, match="does not verify"):
        await purge(database, out, other.public, now=utcnow() + ELEVEN_YEARS, retention_years=10)
    assert await count_invoices(database) == 6


async def test_an_invoice_changed_after_archiving_or_with_a_kept_red_stays(
    database: Database, tmp_path: Path
) -> None:
    signer, out, ids = await archived_setup(database, tmp_path)
    await database.write(lambda c: c.execute(
        invoices.update().where(invoices.c.id == ids[0]).values(updated_at=utcnow())))  # fmt: skip
    # A red invoice (not archived) that references an archived one keeps its original.
    red_id = ids[4]
    await database.write(lambda c: c.execute(
        invoices.update().where(invoices.c.id == red_id).values(original_id=ids[1])))  # fmt: skip
    done = await purge(database, out, signer.public, now=utcnow() + ELEVEN_YEARS,
                       retention_years=10)  # fmt: skip
    assert (done.changed, done.still_referenced, done.purged) == (1, 1, 2)
    assert await count_invoices(database) == 4


def test_retention_below_six_years_is_refused_and_the_cutoff_is_calendar_years() -> None:
    with pytest.raises(ValidationError, match="at least 6"):
        Settings(retention_years=5)
    assert Settings().retention_years == 10
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert retention_cutoff(leap, 10) == datetime(2018, 2, 28, 12, 0, tzinfo=UTC)
    assert retention_cutoff(datetime(2026, 11, 26, tzinfo=UTC), 6) == datetime(
        2020, 11, 26, tzinfo=UTC
    )


def test_the_purge_command_reports_and_refuses_clearly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kaipiao.cli import app as cli

    runner = CliRunner()
    data = tmp_path / "data"
    added = runner.invoke(cli, ["seller", "add", "--name", "甲", "--tax-id", SELLER_TAX_ID,
                                "--data-dir", str(data)])  # fmt: skip
    assert added.exit_code == 0, added.output
    runner.invoke(cli, ["ledger", "checkpoint", "--data-dir", str(data)])
    out = tmp_path / "archive"
    made = runner.invoke(cli, ["archive", "--before", "2099-01-01", "--out", str(out),
                               "--data-dir", str(data)])  # fmt: skip
    assert made.exit_code == 0, made.output
    dry = runner.invoke(cli, ["purge", "--archive", str(out), "--dry-run", "--data-dir", str(data)])
    assert dry.exit_code == 0, dry.output
    assert "would purge 0 of 0 archived invoices" in dry.output and "(10 years)" in dry.output
    short = runner.invoke(cli, ["purge", "--archive", str(out), "--retention-years", "5",
                                "--data-dir", str(data)])  # fmt: skip
    assert short.exit_code == 2 and "retention_years must be at least 6" in short.output
    missing = runner.invoke(cli, ["purge", "--archive", str(tmp_path / "nope"), "--data-dir",
                                  str(data)])  # fmt: skip
    assert missing.exit_code == 1 and "does not verify" in missing.output
