"""Identifiers: time-ordered (so listings page stably and indexes stay compact) and random."""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from kaipiao.domain.codes import new_serial_no, serial_floor

_INVOICE_ID = re.compile(r"inv_[0-9A-Za-z]{20}")  # a serial: 8 characters of time, 12 random


def invoice_id(now: datetime) -> str:
    return "inv_" + new_serial_no(now)


def invoice_id_floor(moment: datetime) -> str:
    """Every invoice id made from `moment` on sorts at or after this, every earlier one before."""
    return "inv_" + serial_floor(moment)


def seller_id() -> str:
    return "sel_" + secrets.token_hex(8)


def key_id() -> str:
    return "key_" + secrets.token_hex(8)


def new_api_key() -> str:
    """A bearer key: `kp_` and 43 URL-safe characters (256 bits)."""
    return "kp_" + secrets.token_urlsafe(32)


def is_invoice_id(value: str) -> bool:
    """Whether `value` has the form of an invoice id (`inv_` and a serial)."""
    return _INVOICE_ID.fullmatch(value) is not None
