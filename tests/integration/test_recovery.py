"""Recovery after a restore, on SQLite and PostgreSQL: the platform's listing brings back what it
issued, the restore is a ledger event, and the ledger verifies with published heads that the
restore made stale named as evidence."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kaipiao.clock import utcnow
from kaipiao.domain.lifecycle import Status
from kaipiao.engine.dispatch import platform_invoice
from kaipiao.ledger.signing import Signer
from kaipiao.platform.outcomes import Issued
from kaipiao.sandbox.fake import FakePlatform
from kaipiao.services import ledger, verification
from kaipiao.services.recovery import mark_restore, recover
from kaipiao.services.sellers import add_seller
from kaipiao.store.database import Database
from tests.engine_support import accept, all_invoices, events_of
from tests.factories import SELLER_TAX_ID
from tests.factories import platform_invoice as other_invoice


async def test_recover_settles_what_was_waiting_and_brings_back_what_the_store_never_had(
    database: Database,
) -> None:
    now = utcnow()
    seller = await add_seller(database, name="甲", tax_id=SELLER_TAX_ID, now=now)
    ids = await accept(database, seller.seller, 2, prefix="R")
    platform = FakePlatform()
    [waiting, *_] = await all_invoices(database)
    issued = await platform.issue(platform_invoice(waiting, seller.seller))  # after the backup
    assert isinstance(issued, Issued)
    unknown = other_invoice(order_ref="R-after-backup", region=seller.seller.region)
    assert isinstance(await platform.issue(unknown), Issued)

    signer = Signer(Ed25519PrivateKey.generate())
    stale = [await ledger.make_checkpoint(database, signer, now=now)]  # published, then lost
    head = await mark_restore(database, backup="b.db", backup_taken_at=now, now=utcnow())
    report = await recover(database, platform, since=now - timedelta(minutes=10), clock=utcnow)

    assert len(report.settled) == 1 and len(report.recovered) == 1, report
    assert not report.contradictions
    by_order = {i.order_id: i for i in await all_invoices(database)}
    assert by_order[waiting.order_id].status is Status.ISSUED
    assert by_order[waiting.order_id].invoice_number == issued.invoice_number
    assert "recovered" in await events_of(database, waiting.id)
    brought = by_order["R-after-backup"]
    assert brought.status is Status.ISSUED and brought.serial_no == unknown.serial_no
    assert await events_of(database, brought.id) == ["recovered"]
    assert by_order["R-1"].status is Status.QUEUED  # never reached the platform: still to send
    assert len(ids) == 2

    again = await recover(database, platform, since=now - timedelta(minutes=10), clock=utcnow)
    assert not again.recovered and not again.settled  # recovery is idempotent

    # A head past the restore's point, published before it: evidence, not an error.
    assert stale[0] is not None and stale[0].size == head
    lost = replace(stale[0], size=head + 50)
    verdict = await verification.verify(database, signer.public, published=[lost])
    assert verdict.ok, verdict.problem
    assert any(f"rolled back to event {head}" in note for note in verdict.notes)
    assert any(
        f"events {head + 1}–{head + 50} of the old chain are gone" in n for n in verdict.notes
    )
