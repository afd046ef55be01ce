"""The ledger on SQLite and PostgreSQL: the chain under concurrent writers, every kind of tampering
found and named, checkpoints against published heads, and proofs that verify offline."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from kaipiao.cli import app as cli
from kaipiao.clock import utcnow
from kaipiao.ledger import proof
from kaipiao.ledger.chain import event_hash
from kaipiao.ledger.signing import Signer, public_pem
from kaipiao.services import ledger, verification
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from kaipiao.store.events import append_event
from tests.engine_support import accept
from tests.factories import OTHER_SELLER_TAX_ID, SELLER_TAX_ID, invoice_body
from tests.integration.conftest import Api


@pytest.fixture(autouse=True, params=["native", "segments", "python"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test three times: with the compiled verification loop over the chain in one piece,
    in segments walked at once (as long chains are), and with the pure-Python loop."""
    if request.param != "python" and not verification.NATIVE:
        pytest.fail("the compiled ledger walker was not built (see setup.py)")
    monkeypatch.setattr(verification, "NATIVE", request.param != "python")
    if request.param == "segments":
        monkeypatch.setattr(verification, "SEGMENT_MIN", 3)
        monkeypatch.setattr(verification.os, "cpu_count", lambda: 4)
    return str(request.param)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "ledger-key.pem")


async def _ledger_with(database: Database, count: int = 12) -> None:
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    await accept(database, seller, count)


async def _sql(database: Database, *statements: str) -> None:
    def run(conn: Any) -> None:
        for statement in statements:
            conn.execute(text(statement))

    await database.write(run)


async def _row(database: Database, seq: int) -> Any:
    return await database.read(
        lambda c: c.execute(text(f"SELECT * FROM ledger_events WHERE seq = {seq}")).one()
    )


async def test_an_untouched_ledger_verifies_with_its_checkpoints(
    database: Database, signer: Signer, tmp_path: Path
) -> None:
    await _ledger_with(database)
    heads = tmp_path / "heads.jsonl"
    first = await ledger.make_checkpoint(database, signer, now=utcnow(), published=heads)
    assert first is not None and first.size == 12  # one event per accepted invoice
    await _ledger_with_more(database)
    assert await ledger.make_checkpoint(database, signer, now=utcnow(), published=heads)
    assert await ledger.make_checkpoint(database, signer, now=utcnow()) is None  # nothing new
    seen: list[tuple[int, int]] = []
    verdict = await verification.verify(
        database, signer.public, published=verification.read_published(heads),
        progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert verdict.ok, verdict.problem
    assert (verdict.events, verdict.checkpoints, verdict.published) == (16, 2, 2)
    assert seen[-1] == (16, 16)


async def _ledger_with_more(database: Database) -> None:
    seller = await add_seller(database, name="乙", tax_id=OTHER_SELLER_TAX_ID, now=utcnow())
    await accept(database, seller.seller, 4, prefix="M")


async def test_concurrent_writers_leave_no_gap_and_no_fork(
    database: Database, signer: Signer
) -> None:
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    others = [Database(database.url) for _ in range(3)]  # as if three processes
    try:
        await asyncio.gather(
            *(accept(db, seller, 15, prefix=f"P{i}") for i, db in enumerate([database, *others]))
        )
    finally:
        for db in others:
            await db.dispose()
    rows = await database.read(
        lambda c: c.execute(
            text("SELECT seq, prev_hash, hash FROM ledger_events ORDER BY seq")
        ).all()
    )
    assert [r.seq for r in rows] == list(range(1, 61))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert (await verification.verify(database, signer.public)).ok


ODD_TIMES = [
    datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before PostgreSQL's epoch
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 0, 0, 500_000, tzinfo=UTC),  # a leap day, trailing zeros
    datetime(2026, 11, 27, 9, 30, 1, 7, tzinfo=UTC),
    datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),
]
ODD_TEXT = ["tab\there", "line\nbreak", "back\\slash \\N", "税号 91330106", "🧾", "\x7f\r"]


async def test_events_at_odd_times_and_with_odd_text_verify_and_an_edit_is_found(
    database: Database, signer: Signer
) -> None:
    """The compiled walk reads PostgreSQL's binary times and SQLite's stored text itself: every
    time and every byte must come out as the Python reference hashes them."""

    def write(conn: Any) -> None:
        for i, (when, note) in enumerate(itertools.product(ODD_TIMES, ODD_TEXT)):
            append_event(
                conn, invoice_id=None if i % 4 == 0 else f"inv_{i}", seller_id="sel_odd",
                type="noted", payload={"note": note, "i": i}, now=when,
            )  # fmt: skip

    await database.write(write)
    await ledger.make_checkpoint(database, signer, now=utcnow())
    verdict = await verification.verify(database, signer.public)
    assert verdict.ok and verdict.events == len(ODD_TIMES) * len(ODD_TEXT), verdict.problem
    await _sql(database, "UPDATE ledger_events SET payload = replace(payload, '税', '锐') "
                         "WHERE seq = 22")  # fmt: skip
    verdict = await verification.verify(database, signer.public)
    assert (verdict.bad_seq, "edited" in (verdict.problem or "")) == (22, True), verdict.problem


TAMPERING = {
    "edit one payload byte": (
        ["UPDATE ledger_events SET payload = replace(payload, '\"order_id\":\"E-', "
         "'\"order_id\":\"X-') WHERE seq = 5"],
        5, "edited",
    ),
    "delete an event": (["DELETE FROM ledger_events WHERE seq = 4"], 4, "missing"),
    "swap two events": (
        ["UPDATE ledger_events SET seq = -6 WHERE seq = 6",
         "UPDATE ledger_events SET seq = 6 WHERE seq = 7",
         "UPDATE ledger_events SET seq = 7 WHERE seq = -6"],
        6, "reordered",
    ),
}  # fmt: skip


@pytest.mark.parametrize("how", list(TAMPERING))
async def test_tampering_is_found_and_named(database: Database, signer: Signer, how: str) -> None:
    await _ledger_with(database)
    await ledger.make_checkpoint(database, signer, now=utcnow())
    statements, bad_seq, word = TAMPERING[how]
    await _sql(database, *statements)
    verdict = await verification.verify(database, signer.public)
    assert not verdict.ok
    assert verdict.bad_seq == bad_seq, verdict.problem
    assert word in (verdict.problem or ""), verdict.problem


async def test_a_forged_event_inserted_with_a_valid_hash_breaks_the_next_link(
    database: Database, signer: Signer
) -> None:
    await _ledger_with(database)
    before = await _row(database, 6)
    await _sql(
        database,
        "UPDATE ledger_events SET seq = seq + 1000000 WHERE seq >= 7",
        "UPDATE ledger_events SET seq = seq - 999999 WHERE seq >= 1000000",
    )
    time = "2026-11-26T00:00:00.000000Z"
    forged = event_hash(7, before.invoice_id, before.seller_id, "issued", time, "{}", before.hash)
    stamp = "2026-11-26 00:00:00.000000" + ("" if database.dialect == "sqlite" else "+00")
    await _sql(
        database,
        "INSERT INTO ledger_events (invoice_id, seller_id, type, payload, created_at, seq, "
        f"prev_hash, hash) VALUES ('{before.invoice_id}', '{before.seller_id}', 'issued', '{{}}', "
        f"'{stamp}', 7, '{before.hash}', '{forged}')",
    )
    verdict = await verification.verify(database, signer.public)
    assert not verdict.ok and verdict.bad_seq == 8
    assert "inserted" in (verdict.problem or "")


async def test_truncating_the_tail_behind_a_checkpoint_is_found(
    database: Database, signer: Signer
) -> None:
    await _ledger_with(database)
    checkpoint = await ledger.make_checkpoint(database, signer, now=utcnow())
    assert checkpoint is not None
    last = await _row(database, 9)
    await _sql(database, "DELETE FROM ledger_events WHERE seq > 9")
    await _sql(database, f"UPDATE ledger_head SET seq = 9, hash = '{last.hash}'")
    verdict = await verification.verify(database, signer.public)
    assert not verdict.ok and verdict.bad_seq == 10
    assert f"covers {checkpoint.size} events" in (verdict.problem or "")


async def test_a_rewritten_and_resigned_chain_is_caught_by_the_published_heads(
    database: Database, signer: Signer, tmp_path: Path
) -> None:
    """An operator with the key rewrites event 3, re-chains everything after it, replaces the
    checkpoints and re-signs: the database is consistent again, the published heads are not."""
    await _ledger_with(database)
    heads = tmp_path / "heads.jsonl"
    await ledger.make_checkpoint(database, signer, now=utcnow(), published=heads)
    await _sql(database, "UPDATE ledger_events SET payload = '{\"rewritten\": 1}' WHERE seq = 3")
    rows = await database.read(
        lambda c: c.execute(text("SELECT * FROM ledger_events ORDER BY seq")).all()
    )
    from kaipiao.ledger.chain import GENESIS, time_text

    prev, updates = GENESIS, []
    for r in rows:
        digest = event_hash(r.seq, r.invoice_id, r.seller_id, r.type, time_text(r.created_at),
                            r.payload, prev)  # fmt: skip
        updates.append(f"UPDATE ledger_events SET prev_hash = '{prev}', hash = '{digest}' "
                       f"WHERE seq = {r.seq}")  # fmt: skip
        prev = digest
    await _sql(database, *updates, f"UPDATE ledger_head SET hash = '{prev}'",
               "DELETE FROM ledger_checkpoints")  # fmt: skip
    await ledger.make_checkpoint(database, signer, now=utcnow())  # re-signed, not published
    assert (await verification.verify(database, signer.public)).ok  # fooled without outside heads
    verdict = await verification.verify(
        database, signer.public, published=verification.read_published(heads)
    )
    assert not verdict.ok and "published head" in (verdict.problem or "")


async def test_a_proof_from_the_api_verifies_offline_and_one_altered_byte_fails(
    api: Api, tmp_path: Path
) -> None:
    created = await api.post(invoice_body("PROOF-1"))
    invoice_id = created.json()["id"]
    cancel = await api.client.post(f"/v1/invoices/{invoice_id}/cancel", headers=api.auth())
    assert cancel.status_code == 200
    early = await api.client.get(f"/v1/invoices/{invoice_id}/proof", headers=api.auth())
    assert early.status_code == 503 and early.json()["code"] == "no_checkpoint"
    signer = Signer.load_or_create(tmp_path / "ledger-key.pem")
    await ledger.make_checkpoint(api.database, signer, now=utcnow())
    response = await api.client.get(f"/v1/invoices/{invoice_id}/proof", headers=api.auth())
    assert response.status_code == 200
    doc = response.json()
    assert [e["type"] for e in doc["events"]] == ["accepted", "cancelled"]
    assert proof.check_inclusion(doc, signer.public) == []

    key = tmp_path / "public.pem"
    key.write_text(public_pem(signer.public))
    good = tmp_path / "proof.json"
    good.write_text(json.dumps(doc))
    result = CliRunner().invoke(cli, ["ledger", "check-proof", str(good), "--public-key", str(key)])
    assert result.exit_code == 0, result.output
    assert "proof OK: 2 events" in result.output

    raw = good.read_text()
    position = raw.index("PROOF-1") + 6
    bad = tmp_path / "altered.json"
    bad.write_text(raw[:position] + "2" + raw[position + 1 :])  # one byte of a payload
    result = CliRunner().invoke(cli, ["ledger", "check-proof", str(bad), "--public-key", str(key)])
    assert result.exit_code == 1
    assert "do not match its hash" in result.output

    other = await api.client.get(f"/v1/invoices/{invoice_id}/proof", headers=api.auth(api.b))
    assert other.status_code == 404


async def test_consistency_between_two_checkpoints_verifies_offline(
    api: Api, tmp_path: Path
) -> None:
    signer = Signer.load_or_create(tmp_path / "ledger-key.pem")
    await api.post(invoice_body("C-1"))
    first = await ledger.make_checkpoint(api.database, signer, now=utcnow())
    for i in range(2, 6):
        await api.post(invoice_body(f"C-{i}"))
    second = await ledger.make_checkpoint(api.database, signer, now=utcnow())
    assert first is not None and second is not None
    response = await api.client.get(
        "/v1/ledger/consistency", params={"first": first.size, "second": second.size},
        headers=api.auth(),
    )  # fmt: skip
    assert response.status_code == 200
    doc = response.json()
    assert proof.check_consistency(doc, signer.public) == []
    doc["first"]["root"] = "00" * 32
    assert proof.check_consistency(doc, signer.public)
