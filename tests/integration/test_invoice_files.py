"""Issue 19: an issued invoice's files, fetched from the real sandbox process after issuance,
kept in the file store with their SHA3-256 in the ledger, served by the API, checked by the
files check `kaipiao ledger verify` runs — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from kaipiao.cli import app as cli
from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Kind, Status
from kaipiao.domain.words import amount_in_words
from kaipiao.engine.files import FileFetchConfig, FileFetcher
from kaipiao.engine.worker import Worker
from kaipiao.ledger.signing import Signer
from kaipiao.platform.http import HttpPlatform
from kaipiao.platform.outcomes import Unavailable
from kaipiao.platform.protocol import FilesRefused
from kaipiao.sandbox.fake import FakePlatform
from kaipiao.sandbox.sheet import CHINA
from kaipiao.services import archive, intake
from kaipiao.services.files import check_files
from kaipiao.services.invoice_request import InvoiceCreate
from kaipiao.services.reversal import reverse_invoice
from kaipiao.store import files as file_records
from kaipiao.store import webhooks
from kaipiao.store.database import Database
from kaipiao.store.filestore import LocalFileStore, file_key
from kaipiao.store.tables import ledger_events
from tests.engine_support import FAST, accept, all_invoices
from tests.factories import invoice_body
from tests.integration.conftest import Api
from tests.integration.test_engine_sandbox import run_until_terminal
from tests.invoice_files import pdf_text, qr_codes, valid_xml

QUICK = FileFetchConfig(idle_poll_s=0.05, backoff=replace(FAST.policy, base_s=0.05, cap_s=0.1))


async def fetch_all(fetcher: FileFetcher, db: Database, timeout_s: float = 20) -> None:
    """Run the fetcher until no job is pending (deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await fetcher.fetch_due()
        if await db.read(file_records.backlog) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("file jobs still pending")


async def ledger_hashes(db: Database, invoice_id: str) -> dict[str, str]:
    rows = await db.read(lambda conn: conn.execute(
        select(ledger_events.c.payload).where(
            ledger_events.c.invoice_id == invoice_id, ledger_events.c.type == "files_stored")
    ).all())  # fmt: skip
    assert len(rows) == 1
    return {kind: about["sha3_256"] for kind, about in json.loads(rows[0].payload).items()}


async def test_issued_files_are_kept_served_and_checked(
    api: Api, http_platform: HttpPlatform, db_url: str, tmp_path: Path
) -> None:
    db = api.database
    store = api.app.state.file_store
    [blue_id] = await accept(db, api.a.seller, 1, prefix="F")
    await run_until_terminal(Worker(db, http_platform, FAST, seed=1), db, 20)
    auth = api.auth()
    early = await api.client.get(f"/v1/invoices/{blue_id}/files/pdf", headers=auth)
    assert early.status_code == 404 and early.json()["code"] == "files_not_ready"
    fetcher = FileFetcher(db, http_platform, store, utcnow, QUICK)
    await fetch_all(fetcher, db)

    # The red invoice against it, issued and fetched the same way.
    await reverse_invoice(db, api.a.seller, blue_id, "sales_return", now=utcnow())
    await run_until_terminal(Worker(db, http_platform, FAST, seed=2), db, 20)
    await fetch_all(fetcher, db)
    items = {i.kind: i for i in await all_invoices(db)}
    blue, red = items[Kind.BLUE], items[Kind.RED]
    assert red.status is Status.ISSUED and blue.invoice_number and red.invoice_number

    for invoice in (blue, red):
        document = (await api.client.get(f"/v1/invoices/{invoice.id}", headers=auth)).json()
        listed = {f["kind"]: f for f in document["files"]}
        assert set(listed) == {"pdf", "xml"}
        recorded = await ledger_hashes(db, invoice.id)
        got = {}
        for kind, media in (("pdf", "application/pdf"), ("xml", "application/xml")):
            answer = await api.client.get(listed[kind]["url"], headers=auth)
            assert answer.status_code == 200
            assert answer.headers["content-type"] == media
            assert answer.headers["etag"] == f'"{recorded[kind]}"'
            assert hashlib.sha3_256(answer.content).hexdigest() == recorded[kind]
            assert listed[kind]["sha3_256"] == recorded[kind]
            again = await api.client.get(
                listed[kind]["url"], headers={**auth, "If-None-Match": answer.headers["etag"]}
            )
            assert again.status_code == 304
            other = await api.client.get(listed[kind]["url"], headers=api.auth(api.b))
            assert other.status_code == 404 and other.json()["code"] == "not_found"
            got[kind] = answer.content
        text = pdf_text(got["pdf"])
        assert invoice.invoice_number and invoice.issued_at
        for shown in (invoice.invoice_number, invoice.buyer["name"], f"{invoice.total:.2f}",
                      amount_in_words(abs(invoice.total))):  # fmt: skip
            assert shown in text, shown
        day = invoice.issued_at.astimezone(CHINA).strftime("%Y%m%d")
        [payload] = qr_codes(got["pdf"])
        assert payload.startswith(
            f"01,32,,{invoice.invoice_number},{invoice.total_amount:.2f},{day},,"
        ), payload
        root = valid_xml(got["xml"])
        basic = root.find("EInvoiceData/BasicInformation")
        assert basic is not None
        assert root.findtext("TaxSupervisionInfo/InvoiceNumber") == invoice.invoice_number
        assert Decimal(basic.findtext("TotalAmWithoutTax") or "") == invoice.total_amount
        assert Decimal(basic.findtext("TotalTaxAm") or "") == invoice.total_tax
        assert Decimal(basic.findtext("TotalTax-includedAmount") or "") == invoice.total
        if invoice is red:  # the red invoice's files carry the original's number
            assert blue.invoice_number in text
            remark = root.findtext("EInvoiceData/AdditionalInformation/Remark") or ""
            assert blue.invoice_number in remark

    assert await check_files(db, store) == (4, [])
    signer = Signer.load_or_create(tmp_path / "ledger-key.pem")  # also what `ledger verify` reads
    out = tmp_path / "archive"
    await archive.write_archive(db, signer, before=utcnow() + timedelta(minutes=1), out=out,
                                now=utcnow(), files=store)  # fmt: skip
    assert archive.verify_archive(out, signer.public) == []
    archived = sorted(str(p.relative_to(out)) for p in (out / "files").rglob("*.*"))
    assert len(archived) == 4 and f"files/{blue.seller_id}/{blue.id}.pdf" in archived

    key = file_key(blue.seller_id, blue.id, "pdf")
    path = store.root / key
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    checked, problems = await check_files(db, store)
    assert checked == 4 and len(problems) == 1 and key in problems[0], problems
    assert (path.stat().st_mode & 0o777) == 0o600
    verified = await asyncio.to_thread(CliRunner().invoke, cli, [
        "ledger", "verify", "--data-dir", str(tmp_path), "--database-url", db_url])  # fmt: skip
    assert verified.exit_code == 1, verified.output
    assert f"invoice files BROKEN: file {key}" in verified.output, verified.output


async def test_fetching_is_retried_and_a_refusal_is_final(
    database: Database, tmp_path: Path
) -> None:
    from kaipiao.services.sellers import add_seller
    from tests.factories import SELLER_TAX_ID

    seller = await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=utcnow(), region="31")
    fake = FakePlatform()
    for order in ("R-0", "R-1"):
        body = InvoiceCreate.model_validate(
            invoice_body(order) | {"callback_url": "https://hooks.example.com/kaipiao"}
        )
        await intake.submit_invoice(
            database, seller.seller, body.to_domain(), body.canonical(), now=utcnow()
        )
    await run_until_terminal(Worker(database, fake, FAST, seed=3), database, 20)
    store = LocalFileStore(tmp_path / "files")
    fetcher = FileFetcher(database, fake, store, utcnow, QUICK)
    fake.script("files", Unavailable("file service down"))
    fake.script("files", FilesRefused("host is not allowed"))
    await fetch_all(fetcher, database)
    jobs = [await database.read(lambda c, i=i: file_records.job_of(c, i.id))
            for i in await all_invoices(database)]  # fmt: skip
    states = sorted((j["status"], j["attempts"]) for j in jobs if j)
    # One job failed for good on the refusal; the other was retried after "down" and stored.
    assert states == [("done", 2), ("failed", 1)], states
    failed = next(j for j in jobs if j and j["status"] == "failed")
    assert "host is not allowed" in failed["last_error"]
    # The stored one is announced to the seller, with its files listed.
    announced = []
    for invoice in await all_invoices(database):
        sent = await database.read(lambda c, i=invoice: webhooks.for_invoice(c, i.id))
        announced += [d["type"] for d in sent]
        if invoice.files:
            assert set(invoice.files) == {"pdf", "xml"}
    assert announced.count("invoice.files_ready") == 1, announced
