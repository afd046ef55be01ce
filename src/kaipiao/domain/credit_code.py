"""Taxpayer identification: the unified social credit code (统一社会信用代码, GB 32100-2015).

An 18-character code over the alphabet 0-9 A-H J-N P-R T U W-Y (no I, O, S, V, Z); the 18th
character is a check character: with value(c) its index in the alphabet and weights 3^(i−1) mod 31
for positions i = 1..17, check = (31 − Σ value × weight mod 31) mod 31.
Legacy taxpayer numbers (15, 17 or 20 alphanumerics, from before 2015) carry no checksum we can
verify and are accepted by shape. Some pilot-era codes fail the checksum, so the check can warn.
"""

from __future__ import annotations

import re
from enum import StrEnum

from kaipiao.domain.errors import InvalidTaxId

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_CODE_SHAPE = re.compile(rf"[{ALPHABET}]{{18}}")
_LEGACY_SHAPE = re.compile(r"[0-9A-Z]{15}|[0-9A-Z]{17}|[0-9A-Z]{20}")


class CheckMode(StrEnum):
    """What to do with an 18-character code whose check character is wrong."""

    REJECT = "reject"
    WARN = "warn"


def check_character(first17: str) -> str:
    """The check character for the first 17 characters of a credit code."""
    total = sum(_VALUE[c] * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate_tax_id(value: str, mode: CheckMode = CheckMode.REJECT) -> str | None:
    """Check a buyer or seller tax id.

    Returns None when valid, a warning text when `mode` is WARN and only the checksum fails,
    and raises InvalidTaxId otherwise.
    """
    if len(value) == 18:
        if not _CODE_SHAPE.fullmatch(value):
            raise InvalidTaxId(
                f"{value!r} is not a credit code: 18 characters of {ALPHABET} are expected"
            )
        expected = check_character(value[:17])
        if value[17] == expected:
            return None
        message = f"check character of {value!r} is {value[17]!r}, expected {expected!r}"
        if mode is CheckMode.WARN:
            return message
        raise InvalidTaxId(message)
    if _LEGACY_SHAPE.fullmatch(value):
        return None
    raise InvalidTaxId(
        f"{value!r} is neither an 18-character credit code nor a 15/17/20-character legacy number"
    )
