"""Codes that appear on 数电 invoices: tax classification codes, invoice numbers, regions, serials.

- Tax classification code (商品和服务税收分类编码): 19 digits.
- 数电 invoice number: 20 digits: 2-digit year, 2-digit province code (GB/T 2260), 1-digit issuing
  channel, 15-digit sequence.
- Serial number: kaipiao's key for one request on the platform, reused by every attempt. At most 20
  characters of [0-9A-Za-z] so it fits providers' order-number fields (Nuonuo's orderNo: ≤ 20).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from datetime import datetime

# [0-9], not \d: \d also matches full-width and Arabic-Indic digits, which no platform accepts.
TAX_CODE = re.compile(r"[0-9]{19}")
INVOICE_NUMBER = re.compile(r"[0-9]{20}")
SERIAL_NO = re.compile(r"[0-9A-Za-z]{1,20}")

# GB/T 2260 province-level codes of the mainland tax bureaus.
PROVINCES: dict[str, str] = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古",
    "21": "辽宁", "22": "吉林", "23": "黑龙江",
    "31": "上海", "32": "江苏", "33": "浙江", "34": "安徽", "35": "福建",
    "36": "江西", "37": "山东",
    "41": "河南", "42": "湖北", "43": "湖南", "44": "广东", "45": "广西", "46": "海南",
    "50": "重庆", "51": "四川", "52": "贵州", "53": "云南", "54": "西藏",
    "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏", "65": "新疆",
}  # fmt: skip


def is_tax_code(value: str) -> bool:
    return bool(TAX_CODE.fullmatch(value))


def is_region(value: str) -> bool:
    return value in PROVINCES


@dataclass(frozen=True, slots=True)
class InvoiceNumber:
    """A parsed 20-digit 数电 invoice number."""

    year: int
    province: str
    channel: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.year % 100:02d}{self.province}{self.channel}{self.sequence:015d}"

    @classmethod
    def parse(cls, value: str) -> InvoiceNumber:
        """Parse a number; raise ValueError if it is not 20 digits with a known province."""
        if not INVOICE_NUMBER.fullmatch(value):
            raise ValueError(f"{value!r} is not a 20-digit invoice number")
        if value[2:4] not in PROVINCES:
            raise ValueError(f"{value!r} names unknown province code {value[2:4]!r}")
        return cls(int(value[:2]), value[2:4], int(value[4]), int(value[5:]))


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Serials need to be unpredictable enough not to collide, not secret: a per-process generator
# seeded from the OS (and seeded afresh in a forked child, so parent and child never share a
# sequence) costs a tenth of a system call per serial, which under load is measurable.
_random = random.Random(os.urandom(32))


def _reseed() -> None:
    _random.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


_PAIRS = [a + b for a in _BASE62 for b in _BASE62]  # two base62 digits per step


def _base62(number: int, width: int) -> str:
    """`number` in `width` base62 digits (width even)."""
    out = []
    for _ in range(width // 2):
        number, pair = divmod(number, 3844)
        out.append(_PAIRS[pair])
    if number:
        raise ValueError("number does not fit the width")
    return "".join(reversed(out))


def serial_floor(moment: datetime) -> str:
    """A string that sorts at or before every serial made from `moment` on and after every one
    made before it (serials begin with their time), for range scans by time on an id index."""
    return _base62(int(moment.timestamp() * 1000), 8)


def new_serial_no(now: datetime) -> str:
    """A fresh serial: 8 base62 characters of milliseconds, then 12 of randomness (71 bits).

    Time first keeps serials roughly ordered (friendly to indexes and to people reading logs);
    the random part makes a collision across processes practically impossible, and the store's
    unique index makes it impossible.
    """
    millis = int(now.timestamp() * 1000)
    return _base62(millis, 8) + "".join(_random.choices(_BASE62, k=12))


def is_serial_no(value: str) -> bool:
    return bool(SERIAL_NO.fullmatch(value))
