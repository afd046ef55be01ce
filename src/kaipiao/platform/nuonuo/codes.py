"""Nuonuo's answers, mapped to kaipiao's outcomes in one place.

Envelope codes (`{code, describe, result}`): `E0000` is success. Codes that mean "this order number
was submitted before" (one source gives `E9106`; another provider uses `6783`/`6655`) are not
verified against the official documentation, so the sets are configuration: a duplicate is
"already submitted: query it", never an error. Codes for refused credentials or signatures keep the
invoice waiting (a configuration problem, not the invoice's); retryable codes mean "nothing done,
try again". Every other code refuses the invoice for good.

Invoice status (`queryInvoiceResult`): 2 issued (final), 20 issuing, 21 signing, 22 failed (final),
24 signing failed (final), 3 voided, 31 voiding.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SUCCESS = "E0000"
DEFAULT_DUPLICATE = frozenset({"E9106", "6783", "6655"})
# The public material gives no code for a refused signature or token; the sandbox's Nuonuo front
# answers `sign_invalid` and `token_invalid`. Configure the real ones when they are known.
DEFAULT_AUTH = frozenset({"sign_invalid", "token_invalid"})
DEFAULT_RETRYABLE = frozenset({"system_busy"})


class Meaning(StrEnum):
    OK = "ok"
    DUPLICATE = "duplicate"  # already submitted under this order number: query it
    AUTH = "auth"  # credentials or signature refused: keep waiting, page an operator
    RETRY = "retry"  # nothing was done; retry later
    REFUSED = "refused"  # the platform refuses this invoice for good


@dataclass(frozen=True, slots=True)
class CodeTable:
    duplicate: frozenset[str] = DEFAULT_DUPLICATE
    auth: frozenset[str] = DEFAULT_AUTH
    retryable: frozenset[str] = DEFAULT_RETRYABLE

    def meaning(self, code: str) -> Meaning:
        if code == SUCCESS:
            return Meaning.OK
        if code in self.duplicate:
            return Meaning.DUPLICATE
        if code in self.auth:
            return Meaning.AUTH
        if code in self.retryable:
            return Meaning.RETRY
        return Meaning.REFUSED


class InvoiceState(StrEnum):
    ISSUED = "issued"
    PENDING = "pending"
    FAILED = "failed"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class StatusEntry:
    state: InvoiceState
    label: str


STATUS: dict[str, StatusEntry] = {
    "2": StatusEntry(InvoiceState.ISSUED, "开票完成"),
    "20": StatusEntry(InvoiceState.PENDING, "开票中"),
    "21": StatusEntry(InvoiceState.PENDING, "签章中"),
    "22": StatusEntry(InvoiceState.FAILED, "开票失败"),
    "24": StatusEntry(InvoiceState.FAILED, "签章失败"),
    "3": StatusEntry(InvoiceState.VOIDED, "已作废"),
    "31": StatusEntry(InvoiceState.VOIDED, "作废中"),
}

# kaipiao's reversal reasons → Nuonuo's `redReason` (1 销货退回, 2 开票有误, 3 服务中止,
# 4 销售折让); the tax platform's own numbering differs (01 开票有误, 02 销货退回): map explicitly.
RED_REASON: dict[str, str] = {
    "sales_return": "1",
    "invoicing_error": "2",
    "service_stopped": "3",
    "sales_discount": "4",
}


@dataclass(frozen=True, slots=True)
class Methods:
    """API names; the issue method appears under two names in public material: configurable."""

    issue: str = "nuonuo.OpeMplatform.requestBillingNew"
    query: str = "nuonuo.OpeMplatform.queryInvoiceResult"
    red_confirm: str = "nuonuo.OpeMplatform.saveInvoiceRedConfirm"
    red_confirm_query: str = "nuonuo.OpeMplatform.queryInvoiceRedConfirm"
    fast_red: str = "nuonuo.OpeMplatform.fastInvoiceRed"
