"""Identifiers: time-ordered (so listings page stably and indexes stay compact) and random."""

from __future__ import annotations

import secrets
from datetime import datetime

from kaipiao.domain.codes import new_serial_no


def invoice_id(now: datetime) -> str:
    return "inv_" + new_serial_no(now)


def seller_id() -> str:
    return "sel_" + secrets.token_hex(8)


def key_id() -> str:
    return "key_" + secrets.token_hex(8)


def new_api_key() -> str:
    """A bearer key: `kp_` and 43 URL-safe characters (256 bits)."""
    return "kp_" + secrets.token_urlsafe(32)
