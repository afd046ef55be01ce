"""Archives on SQLite and PostgreSQL: written, verified offline, and any change found."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kaipiao.cli import app as cli
from kaipiao.clock import utcnow
from kaipiao.ledger.signing import Signer, public_pem
from kaipiao.services import archive, cancellation
from kaipiao.services.errors import ServiceError
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from tests.engine_support import accept
from tests.factories import SELLER_TAX_ID


async def test_an_archive_verifies_and_any_change_is_found(
    database: Database, tmp_path: Path
) -> None:
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    ids = await accept(database, seller, 5, prefix="A")
    for invoice_id in ids[:3]:  # finished: archived; the two still queued are not
        await cancellation.cancel_invoice(database, seller, invoice_id, now=utcnow())
    signer = Signer.load_or_create(tmp_path / "key.pem")
    out = tmp_path / "archive"
    written = await archive.write_archive(
        database, signer, before=utcnow() + timedelta(minutes=1), out=out, now=utcnow()
    )
    assert (written.invoices, written.events) == (3, 6)  # accepted + cancelled each
    assert archive.verify_archive(out, signer.public) == []
    with pytest.raises(ServiceError, match="already holds"):
        await archive.write_archive(database, signer, before=utcnow(), out=out, now=utcnow())

    key = tmp_path / "public.pem"
    key.write_text(public_pem(signer.public))
    checked = CliRunner().invoke(cli, ["archive", "verify", str(out), "--public-key", str(key)])
    assert checked.exit_code == 0 and "archive OK" in checked.output, checked.output

    other = Signer.load_or_create(tmp_path / "other.pem")
    assert "signature" in archive.verify_archive(out, other.public)[0]

    events = out / "events.jsonl.gz"
    original = gzip.decompress(events.read_bytes())
    assert b"A-1" in original
    events.write_bytes(gzip.compress(original.replace(b"A-1", b"A-9", 1)))
    assert "changed since the archive was signed" in archive.verify_archive(out, signer.public)[0]


async def test_an_edited_event_is_found_even_in_a_re_signed_archive(
    database: Database, tmp_path: Path
) -> None:
    """Whoever holds the key can re-sign the manifest, but not forge the events' own hashes."""
    seller = (await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow())).seller
    (invoice_id,) = await accept(database, seller, 1, prefix="B")
    await cancellation.cancel_invoice(database, seller, invoice_id, now=utcnow())
    signer = Signer.load_or_create(tmp_path / "key.pem")
    out = tmp_path / "archive"
    await archive.write_archive(
        database, signer, before=utcnow() + timedelta(minutes=1), out=out, now=utcnow()
    )
    events = out / "events.jsonl.gz"
    original = gzip.decompress(events.read_bytes())
    assert b"B-0" in original  # in the accepted event's payload
    events.write_bytes(gzip.compress(original.replace(b"B-0", b"B-7", 1)))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["events.jsonl.gz"] = archive._sha256(events)
    manifest["signature"] = signer.sign_bytes(archive._canonical(manifest))
    (out / "manifest.json").write_text(json.dumps(manifest))
    problems = archive.verify_archive(out, signer.public)
    assert any("do not match its hash" in p for p in problems), problems
