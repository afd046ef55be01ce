"""The `TaxPlatform` port and the requests that cross it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from kaipiao.domain.invoice import Buyer
from kaipiao.platform.outcomes import (
    IssueOutcome,
    NotFound,
    QueryOutcome,
    Throttled,
    Unavailable,
)


@dataclass(frozen=True, slots=True)
class PlatformLine:
    """One line as sent. A discount line (`kind` "discount") follows its goods line and has no
    quantity or price; so has a red line that reverses an amount. `original_index`: on a red
    line, the index of the original's line it reverses."""

    name: str
    tax_code: str
    quantity: Decimal | None
    unit_price: Decimal | None
    tax_rate: str
    amount: Decimal
    tax: Decimal
    spec: str | None = None
    unit: str | None = None
    price_includes_tax: bool = False  # `unit_price` includes tax (amount and tax are computed)
    kind: str = "goods"
    original_index: int | None = None


@dataclass(frozen=True, slots=True)
class PlatformInvoice:
    """A blue invoice as sent to a platform. `serial_no` is the same on every attempt."""

    serial_no: str
    order_ref: str
    seller_tax_id: str
    seller_region: str | None
    invoice_type: str
    buyer: Buyer
    lines: tuple[PlatformLine, ...]
    total_amount: Decimal
    total_tax: Decimal
    total: Decimal
    remark: str | None = None


@dataclass(frozen=True, slots=True)
class RedRequest:
    """A red-letter (红字) invoice against an issued one, under its own serial."""

    serial_no: str
    original_invoice_number: str
    reason: str
    seller_tax_id: str
    seller_region: str | None = None
    # A partial reversal (部分红冲): its negative lines and totals. Empty: all of the original.
    lines: tuple[PlatformLine, ...] = ()
    total_amount: Decimal | None = None
    total_tax: Decimal | None = None
    total: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ListedInvoice:
    serial_no: str
    invoice_number: str
    kind: str
    order_ref: str | None
    issued_at: datetime
    total: Decimal
    original_invoice_number: str | None = None


@dataclass(frozen=True, slots=True)
class ListedPage:
    invoices: tuple[ListedInvoice, ...]
    next_page: int | None


ListOutcome = ListedPage | Throttled | Unavailable

FILE_KINDS = ("pdf", "xml")
MEDIA_TYPES = {"pdf": "application/pdf", "xml": "application/xml"}


@dataclass(frozen=True, slots=True)
class InvoiceFile:
    """One file of an issued invoice: `kind` pdf or xml, its bytes as the platform gave them."""

    kind: str
    content: bytes

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]


@dataclass(frozen=True, slots=True)
class InvoiceFiles:
    files: tuple[InvoiceFile, ...]


@dataclass(frozen=True, slots=True)
class FilesRefused:
    """The files cannot be had, now or later (a refused URL, an over-large file)."""

    reason: str


# NotFound: not issued yet, or the platform has not made its files yet — ask again later.
FilesOutcome = InvoiceFiles | NotFound | FilesRefused | Throttled | Unavailable


class TaxPlatform(Protocol):
    """What kaipiao needs from a tax platform. Implementations never raise for platform behaviour:
    slowness, refusals, outages and lost answers all come back as outcomes."""

    async def issue(self, invoice: PlatformInvoice) -> IssueOutcome:
        """Submit a blue invoice (idempotent per serial on platforms that deduplicate)."""
        ...

    async def query(
        self, serial_no: str, *, seller_region: str | None = None,
        seller_tax_id: str | None = None,
    ) -> QueryOutcome:  # fmt: skip
        """What the platform knows of `serial_no`: Issued, Pending, Rejected or NotFound. The
        seller is named for platforms whose calls are made on a seller's own account."""
        ...

    async def issue_red(self, request: RedRequest) -> IssueOutcome:
        """Submit a red-letter invoice against an issued one."""
        ...

    async def list_issued(
        self, seller_tax_id: str, issued_from: datetime, issued_to: datetime, page: int = 1
    ) -> ListOutcome:
        """One page of the invoices issued for a seller in [issued_from, issued_to)."""
        ...

    async def fetch_files(
        self, invoice_number: str, *, serial_no: str, seller_tax_id: str,
        seller_region: str | None = None,
    ) -> FilesOutcome:  # fmt: skip
        """The PDF and XML files of an issued invoice (blue or red)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
