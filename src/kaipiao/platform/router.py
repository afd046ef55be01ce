"""`PlatformRouter`: one `TaxPlatform` for the engine, a platform per seller behind it.

Sellers on the default platform (the sandbox protocol at `--platform-url`) share one client;
sellers with their own provider account (Nuonuo) get their own, built on first use by `resolve`
and kept. A seller whose account cannot be resolved (a missing environment variable, a secret
that does not decrypt) gets `Unavailable` answers: its invoices wait, visibly, and the error says
why, instead of going out on the wrong platform.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from kaipiao.platform.outcomes import IssueOutcome, QueryOutcome, Unavailable
from kaipiao.platform.protocol import (
    FilesOutcome,
    ListOutcome,
    PlatformInvoice,
    RedRequest,
    TaxPlatform,
)

Resolve = Callable[[str], Awaitable[TaxPlatform | None]]  # seller tax id → its own platform


class UnresolvedAccount(Exception):
    """A seller's provider account is configured but cannot be used; the text says why."""


class PlatformRouter:
    def __init__(self, default: TaxPlatform, resolve: Resolve) -> None:
        self.default = default
        self.resolve = resolve
        self._own: dict[str, TaxPlatform] = {}
        self._default_for: set[str] = set()

    async def _for(self, seller_tax_id: str | None) -> TaxPlatform:
        if seller_tax_id is None or seller_tax_id in self._default_for:
            return self.default
        own = self._own.get(seller_tax_id)
        if own is not None:
            return own
        platform = await self.resolve(seller_tax_id)
        if platform is None:
            self._default_for.add(seller_tax_id)
            return self.default
        self._own[seller_tax_id] = platform
        return platform

    async def _route(self, seller_tax_id: str | None) -> TaxPlatform | Unavailable:
        try:
            return await self._for(seller_tax_id)
        except UnresolvedAccount as exc:
            return Unavailable(str(exc), retry_after_s=60.0)

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        platform = await self._route(invoice.seller_tax_id)
        if isinstance(platform, Unavailable):
            return platform
        return await platform.issue(invoice)

    async def query(
        self, serial_no: str, *, seller_region: str | None = None,
        seller_tax_id: str | None = None,
    ) -> QueryOutcome:  # fmt: skip
        platform = await self._route(seller_tax_id)
        if isinstance(platform, Unavailable):
            return platform
        return await platform.query(serial_no, seller_region=seller_region,
                                    seller_tax_id=seller_tax_id)  # fmt: skip

    async def issue_red(self, request: RedRequest) -> IssueOutcome:
        platform = await self._route(request.seller_tax_id)
        if isinstance(platform, Unavailable):
            return platform
        return await platform.issue_red(request)

    async def list_issued(
        self, seller_tax_id: str, issued_from: datetime, issued_to: datetime, page: int = 1
    ) -> ListOutcome:
        platform = await self._route(seller_tax_id)
        if isinstance(platform, Unavailable):
            return platform
        return await platform.list_issued(seller_tax_id, issued_from, issued_to, page)

    async def fetch_files(
        self, invoice_number: str, *, serial_no: str, seller_tax_id: str,
        seller_region: str | None = None,
    ) -> FilesOutcome:  # fmt: skip
        platform = await self._route(seller_tax_id)
        if isinstance(platform, Unavailable):
            return platform
        return await platform.fetch_files(invoice_number, serial_no=serial_no,
                                          seller_tax_id=seller_tax_id,
                                          seller_region=seller_region)  # fmt: skip

    async def aclose(self) -> None:
        await self.default.aclose()
        for platform in self._own.values():
            await platform.aclose()
