"""The Nuonuo adapter downloads an issued invoice's files from the URLs in the query result,
through the outbound policy with a host allowlist, a size cap and a timeout — against the
sandbox process's Nuonuo front (which serves the files itself, on 127.0.0.1)."""

from __future__ import annotations

import ipaddress

from kaipiao.platform.downloads import FileDownloader, FileLimits
from kaipiao.platform.nuonuo import NuonuoPlatform
from kaipiao.platform.outbound import OutboundPolicy
from kaipiao.platform.outcomes import Issued, Pending
from kaipiao.platform.protocol import FilesRefused, InvoiceFiles
from tests.factories import SELLER_TAX_ID, platform_invoice
from tests.integration.test_nuonuo_engine import nuonuo
from tests.invoice_files import pdf_text, valid_xml
from tests.processes import Running

LOOPBACK = OutboundPolicy([ipaddress.ip_network("127.0.0.0/8")])


def with_downloads(sandbox: Running, policy: OutboundPolicy, limits: FileLimits) -> NuonuoPlatform:
    platform = nuonuo(sandbox)
    platform.downloader = FileDownloader(policy, limits)
    return platform


async def issued_through(platform: NuonuoPlatform) -> tuple[str, Issued]:
    invoice = platform_invoice()
    outcome = await platform.issue(invoice)
    for _ in range(50):
        if isinstance(outcome, Issued):
            return invoice.serial_no, outcome
        assert isinstance(outcome, Pending), outcome
        outcome = await platform.query(invoice.serial_no, seller_tax_id=SELLER_TAX_ID)
    raise AssertionError(f"not issued: {outcome}")


async def test_files_come_from_the_query_results_urls(sandbox: Running) -> None:
    platform = with_downloads(sandbox, LOOPBACK, FileLimits(hosts=frozenset({"127.0.0.1"})))
    try:
        serial, issued = await issued_through(platform)
        got = await platform.fetch_files(
            issued.invoice_number, serial_no=serial, seller_tax_id=SELLER_TAX_ID
        )
    finally:
        await platform.aclose()
    assert isinstance(got, InvoiceFiles)
    files = {f.kind: f.content for f in got.files}
    assert issued.invoice_number in pdf_text(files["pdf"])
    assert valid_xml(files["xml"]).findtext("TaxSupervisionInfo/InvoiceNumber") == (
        issued.invoice_number
    )


async def test_downloads_are_refused_outside_the_policy(sandbox: Running) -> None:
    cases = {
        "is not allowed": (LOOPBACK, FileLimits(hosts=frozenset())),
        "destination_not_allowed": (OutboundPolicy(), FileLimits(hosts=frozenset({"127.0.0.1"}))),
        "over 1000 bytes": (LOOPBACK, FileLimits(hosts=frozenset({"127.0.0.1"}), max_bytes=1000)),
    }
    for reason, (policy, limits) in cases.items():
        platform = with_downloads(sandbox, policy, limits)
        try:
            serial, issued = await issued_through(platform)
            got = await platform.fetch_files(
                issued.invoice_number, serial_no=serial, seller_tax_id=SELLER_TAX_ID
            )
        finally:
            await platform.aclose()
        assert isinstance(got, FilesRefused) and reason in got.reason, (reason, got)
