"""VAT rates a 数电 invoice line may carry.

The table is data: a rate change (as in 2019, 16% → 13%) is one edit here. `exempt` (免税) and
`non_taxable` (不征税) carry zero tax but are not the same as the 0% rate (出口零税率); the
platform and the provider need to tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from kaipiao.domain.errors import InvalidRate


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A rate as it appears on a line: `code` is what travels in requests ("0.13", "exempt")."""

    code: str
    rate: Decimal
    label: str

    @property
    def zero_tax(self) -> bool:
        return self.rate == 0


RATES: tuple[TaxRate, ...] = (
    TaxRate("0.13", Decimal("0.13"), "13%"),
    TaxRate("0.09", Decimal("0.09"), "9%"),
    TaxRate("0.06", Decimal("0.06"), "6%"),
    TaxRate("0.05", Decimal("0.05"), "5%"),
    TaxRate("0.03", Decimal("0.03"), "3%"),
    TaxRate("0.01", Decimal("0.01"), "1%"),
    TaxRate("0", Decimal("0"), "0%"),
    TaxRate("exempt", Decimal("0"), "免税"),
    TaxRate("non_taxable", Decimal("0"), "不征税"),
)

_BY_CODE = {r.code: r for r in RATES}
_NUMERIC = {r.rate: r for r in RATES if r.code[0].isdigit()}


def parse_rate(value: str) -> TaxRate:
    """The table entry for `value` ("0.13", "0.130", "exempt"); InvalidRate if there is none."""
    text = value.strip()
    if text in _BY_CODE:
        return _BY_CODE[text]
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidRate(f"unknown tax rate {value!r}") from None
    if not number.is_finite() or number not in _NUMERIC:
        allowed = ", ".join(r.code for r in RATES)
        raise InvalidRate(f"unknown tax rate {value!r}; allowed: {allowed}")
    return _NUMERIC[number]
