"""A seller: the taxpayer that issues invoices through kaipiao, and the rules that apply to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from kaipiao.domain.credit_code import CheckMode
from kaipiao.domain.invoice import MAX_LINES, SellerPolicy


@dataclass(frozen=True, slots=True)
class Seller:
    id: str
    name: str
    tax_id: str
    region: str
    quota_per_s: float | None
    invoice_limit: Decimal | None
    tax_id_check: CheckMode
    allowed_networks: tuple[str, ...]
    webhook_secret: str
    created_at: datetime
    max_lines: int | None = None  # None: the platform's MAX_LINES
    limit_includes_tax: bool = False  # invoice_limit is on the total including tax

    def policy(self) -> SellerPolicy:
        return SellerPolicy(
            invoice_limit=self.invoice_limit,
            tax_id_check=self.tax_id_check,
            limit_includes_tax=self.limit_includes_tax,
            max_lines=self.max_lines or MAX_LINES,
        )
