"""Structured JSON logs (structlog over the standard library's logging).

Every record is one JSON object with `timestamp` (UTC), `level`, `logger`, `event` and whatever
context is bound where it happens: `request_id` for an API request, `seller_id` once the caller
is known, `invoice_id` and `serial_no` while a worker handles an invoice. Secrets and personal
tax data never appear in full: API keys, bearer tokens and 18-character tax ids (in bound
fields or in the message text) are cut to their last four characters.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_FIELDS = {"api_key", "authorization", "token", "app_secret", "tax_id", "buyer_tax_id"}
_API_KEY = re.compile(r"\bkp_[A-Za-z0-9_-]{20,}")
_TAX_ID = re.compile(r"\b[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}\b")


def mask(value: str) -> str:
    """`…` and the last four characters (short values entirely hidden)."""
    return "…" + value[-4:] if len(value) > 8 else "…"


def _redact_text(text: str) -> str:
    text = _API_KEY.sub(lambda m: "kp_" + mask(m.group()), text)
    return _TAX_ID.sub(lambda m: mask(m.group()), text)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: hide secrets and tax ids in fields and text."""
    for key, value in list(event.items()):
        if key in _SECRET_FIELDS and isinstance(value, str):
            event[key] = mask(value)
        elif isinstance(value, str):
            event[key] = _redact_text(value)
    return event


def configure(level: str, stream: Any = None) -> None:
    """Route every stdlib log record through structlog's JSON renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


_ids = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(16)))


def new_request_id() -> str:
    """16 hex digits from a per-process generator (a system call per request showed up in
    intake profiles; request ids need to be distinct, not secret)."""
    return f"{_ids.getrandbits(64):016x}"


bind = structlog.contextvars.bind_contextvars
clear = structlog.contextvars.clear_contextvars
