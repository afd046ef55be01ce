"""The sandbox platform's books: what it issued, for whom, and the ground truth about duplicates.

Pure logic without I/O besides the optional journal; the HTTP server and the FakePlatform both
drive it, so the fake behaves like the real sandbox by construction. Every method takes `now`
so tests control time. Asynchronous issuance is settled lazily: a pending invoice becomes final
the first time anything looks at it after its `final_at`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from kaipiao.domain.codes import is_serial_no
from kaipiao.domain.errors import DomainError
from kaipiao.domain.money import within_platform_tolerance
from kaipiao.domain.rates import parse_rate
from kaipiao.platform.outcomes import (
    Duplicate,
    Issued,
    NotFound,
    Pending,
    QueryOutcome,
    Rejected,
)
from kaipiao.platform.protocol import ListedInvoice, ListedPage, PlatformInvoice, RedRequest
from kaipiao.platform.wire import encode_line
from kaipiao.sandbox.faults import PROFILES, Faults
from kaipiao.sandbox.invoice_pdf import invoice_pdf
from kaipiao.sandbox.invoice_xml import invoice_xml
from kaipiao.sandbox.records import Record
from kaipiao.sandbox.sheet import sheet_of
from kaipiao.sandbox.validation import check_invoice

DEFAULT_REGION = "31"
BUYER_FIELDS = ("name", "tax_id", "address", "phone", "bank", "account", "email")
CHANNEL = 1
PAGE_SIZE = 100


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class SandboxState:
    """The platform's state and its fault configuration."""

    seed: int = 0
    faults: Faults = field(default_factory=lambda: PROFILES["ideal"])
    journal_path: Path | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.records: list[Record] = []
        self.by_serial: dict[str, list[Record]] = {}
        self.by_number: dict[str, Record] = {}
        self.sequences: Counter[tuple[int, str]] = Counter()
        self.calls: Counter[str] = Counter()
        self.buckets: dict[str, _Bucket] = {}
        self.made_files: dict[str, dict[str, bytes]] = {}
        self._journal: IO[str] | None = None
        if self.journal_path is not None:
            self._load(self.journal_path)
            self._journal = self.journal_path.open("a", encoding="utf-8")
            if self.journal_path.stat().st_size and not self._ends_with_newline(self.journal_path):
                self._journal.write("\n")  # seal a torn last line so the next record stands alone

    # -- persistence ---------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        latest: dict[int, Record] = {}
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    record = Record.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash: the call it describes got no answer
                latest[record.key] = record
        for record in sorted(latest.values(), key=lambda r: r.key):
            self._index(record)

    @staticmethod
    def _ends_with_newline(path: Path) -> bool:
        with path.open("rb") as raw:
            raw.seek(-1, 2)
            return raw.read(1) == b"\n"

    def _index(self, record: Record) -> None:
        self.records.append(record)
        self.by_serial.setdefault(record.serial_no, []).append(record)
        if record.invoice_number:
            self.by_number[record.invoice_number] = record
            sequence_key = (int(record.invoice_number[:2]), record.invoice_number[2:4])
            self.sequences[sequence_key] = max(
                self.sequences[sequence_key], int(record.invoice_number[5:])
            )

    def _save(self, record: Record) -> None:
        if self._journal is not None:
            self._journal.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            self._journal.flush()

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    # -- numbering and settlement --------------------------------------------------------------
    def _assign_number(self, record: Record, now: datetime) -> None:
        year = now.year % 100
        self.sequences[(year, record.region)] += 1
        record.invoice_number = (
            f"{year:02d}{record.region}{CHANNEL}{self.sequences[(year, record.region)]:015d}"
        )
        record.issued_at = now
        record.status = "issued"
        self.by_number[record.invoice_number] = record
        if record.original_invoice_number:
            original = self.by_number[record.original_invoice_number]
            if self._left(original, ("issued",)) == 0:
                original.reversed_by = record.invoice_number

    def _settle(self, record: Record, now: datetime) -> None:
        if record.status != "pending" or now < record.final_at:
            return
        if record.fail:
            record.status = "failed"
            record.error = "platform_failed"
        else:
            self._assign_number(record, record.final_at)
        self._save(record)

    def settle(self, records: list[Record], now: datetime) -> None:
        """Finish these records if their time has come (a query looks at a few, not all)."""
        for record in records:
            self._settle(record, now)

    def settle_all(self, now: datetime) -> None:
        for record in self.records:
            if record.status == "pending":
                self._settle(record, now)

    # -- quota ---------------------------------------------------------------------------------
    def throttle(self, seller_tax_id: str, now: datetime) -> float | None:
        """Seconds to wait if `seller_tax_id` is over its quota now, else None (and spend one)."""
        rate = self.faults.quota_per_s
        if rate is None:
            return None
        stamp = now.timestamp()
        burst = float(self.faults.quota_burst)
        bucket = self.buckets.setdefault(seller_tax_id, _Bucket(burst, stamp))
        bucket.tokens = min(burst, bucket.tokens + (stamp - bucket.stamp) * rate)
        bucket.stamp = stamp
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / rate

    # -- the platform's operations -------------------------------------------------------------
    def _new_record(self, serial_no: str, kind: str, seller: str, region: str | None,
                    order_ref: str | None, total: str, now: datetime) -> Record:  # fmt: skip
        asynchronous = self.faults.async_issue
        record = Record(
            key=len(self.records) + 1,
            serial_no=serial_no,
            kind=kind,
            seller_tax_id=seller,
            region=region or DEFAULT_REGION,
            order_ref=order_ref,
            total=total,
            created_at=now,
            status="pending",
            final_at=now + timedelta(seconds=self.faults.async_delay_s if asynchronous else 0),
            fail=asynchronous and self.rng.random() < self.faults.async_fail_rate,
        )
        self._index(record)
        return record

    def _existing(self, serial_no: str, now: datetime) -> Issued | Duplicate | Pending | None:
        if not self.faults.dedup or serial_no not in self.by_serial:
            return None
        record = self.by_serial[serial_no][0]
        self._settle(record, now)
        if record.status == "pending":
            return Pending(poll_after_s=max(0.0, (record.final_at - now).total_seconds()))
        if record.status == "failed":
            return None  # a failed attempt may be resubmitted under the same serial
        assert record.invoice_number is not None
        return Duplicate(record.invoice_number, record.issued_at)

    def _finish(self, record: Record, now: datetime) -> Issued | Pending:
        if record.final_at <= now and not record.fail:
            self._assign_number(record, now)
            self._save(record)
            assert record.invoice_number is not None
            assert record.issued_at is not None
            return Issued(record.invoice_number, record.issued_at)
        self._save(record)
        return Pending(poll_after_s=(record.final_at - now).total_seconds())

    def issue(
        self, invoice: PlatformInvoice, now: datetime
    ) -> Issued | Duplicate | Pending | Rejected:
        """Issue a blue invoice: deduplicated by serial unless dedup is off."""
        rejection = check_invoice(invoice)
        if rejection is not None:
            return rejection
        existing = self._existing(invoice.serial_no, now)
        if existing is not None:
            return existing
        record = self._new_record(
            invoice.serial_no, "blue", invoice.seller_tax_id, invoice.seller_region,
            invoice.order_ref, str(invoice.total), now,
        )  # fmt: skip
        record.lines = [encode_line(line) for line in invoice.lines]
        record.invoice_type = invoice.invoice_type
        record.buyer = {k: getattr(invoice.buyer, k) for k in BUYER_FIELDS}
        record.remark = invoice.remark
        return self._finish(record, now)

    def _left(self, original: Record, counted: tuple[str, ...] = ("pending", "issued")) -> Decimal:
        """What is left to reverse of `original` after its red invoices in `counted` states."""
        reds = (
            Decimal(r.total) for r in self.records
            if r.kind == "red" and r.original_invoice_number == original.invoice_number
            and r.status in counted
        )  # fmt: skip
        return Decimal(original.total) + sum(reds, Decimal(0))

    @staticmethod
    def _check_red_lines(request: RedRequest, left: Decimal) -> Rejected | None:
        """A partial red invoice (部分红冲): negative lines within tolerance, totals their sums,
        and no more than what is left of the original."""
        amount = tax = Decimal(0)
        for index, line in enumerate(request.lines):
            try:
                rate = parse_rate(line.tax_rate)
            except DomainError as exc:
                return Rejected(exc.code, f"line {index}: {exc.message}")
            if line.amount > 0 or line.tax > 0:
                return Rejected("invalid_red_line", f"line {index}: red lines are negative")
            if not within_platform_tolerance(line.amount, line.tax, rate):
                return Rejected("tax_mismatch", f"line {index}: |amount × rate − tax| > 0.06")
            amount += line.amount
            tax += line.tax
        if (amount, tax, amount + tax) != (request.total_amount, request.total_tax, request.total):
            return Rejected("total_mismatch", "totals are not the sums of the lines")
        if -(amount + tax) > left:
            return Rejected("exceeds_reversible", f"{-(amount + tax)} to reverse, {left} left")
        return None

    def issue_red(
        self, request: RedRequest, now: datetime
    ) -> Issued | Duplicate | Pending | Rejected:
        """Issue a red-letter invoice with negated amounts against an issued blue one."""
        if not is_serial_no(request.serial_no):
            return Rejected("invalid_serial_no", "serial_no must be 1–20 letters or digits")
        existing = self._existing(request.serial_no, now)
        if existing is not None:
            return existing
        original = self.by_number.get(request.original_invoice_number)
        if original is None or original.kind != "blue":
            return Rejected("original_not_found", "no blue invoice has that number")
        if original.seller_tax_id != request.seller_tax_id:
            return Rejected("original_not_found", "no blue invoice of this seller has that number")
        if original.reversed_by is not None:
            return Rejected("already_reversed", f"reversed by {original.reversed_by}")
        left = self._left(original)
        if left <= 0:
            return Rejected("already_reversed", "red invoices against it take all of it")
        if request.lines:
            refused = self._check_red_lines(request, left)
            if refused is not None:
                return refused
            total = request.total
            lines = [encode_line(line) for line in request.lines]
        else:  # all that is left, as the original's lines negated when nothing was reversed yet
            total = -left
            lines = [
                {**line, "amount": str(-Decimal(line["amount"])), "tax": str(-Decimal(line["tax"]))}
                for line in original.lines or []
            ] if left == Decimal(original.total) else []  # fmt: skip
        record = self._new_record(
            request.serial_no, "red", request.seller_tax_id, original.region, original.order_ref,
            str(total), now,
        )  # fmt: skip
        record.original_invoice_number = original.invoice_number
        record.lines = lines
        record.invoice_type, record.buyer = original.invoice_type, original.buyer
        return self._finish(record, now)

    def query(self, serial_no: str, now: datetime) -> QueryOutcome:
        records = self.by_serial.get(serial_no)
        if not records:
            return NotFound()
        record = records[0]
        self._settle(record, now)
        if record.status == "pending":
            return Pending(poll_after_s=max(0.0, (record.final_at - now).total_seconds()))
        if record.status == "failed":
            # A final failure: this serial produced no invoice and may be resubmitted.
            return Rejected(record.error or "platform_failed", "the platform failed to issue it")
        assert record.invoice_number is not None
        assert record.issued_at is not None
        return Issued(record.invoice_number, record.issued_at)

    def files(self, invoice_number: str, now: datetime) -> dict[str, bytes] | None:
        """The PDF and XML of an issued invoice, made once and kept; None if not issued."""
        self.settle_all(now)
        record = self.by_number.get(invoice_number)
        if record is None or record.status != "issued":
            return None
        made = self.made_files.get(invoice_number)
        if made is None:
            sheet = sheet_of(record)
            made = {"pdf": invoice_pdf(sheet), "xml": invoice_xml(sheet)}
            self.made_files[invoice_number] = made
        return made

    def record_for(self, serial_no: str) -> Record | None:
        records = self.by_serial.get(serial_no)
        return records[0] if records else None

    def list_issued(
        self,
        seller_tax_id: str,
        issued_from: datetime,
        issued_to: datetime,
        page: int,
        now: datetime,
    ) -> ListedPage:
        self.settle_all(now)
        matching = [
            r
            for r in self.records
            if r.seller_tax_id == seller_tax_id
            and r.status == "issued"
            and r.issued_at is not None
            and issued_from <= r.issued_at < issued_to
        ]
        start = (page - 1) * PAGE_SIZE
        chunk = matching[start : start + PAGE_SIZE]
        items = tuple(
            ListedInvoice(
                serial_no=r.serial_no,
                invoice_number=r.invoice_number or "",
                kind=r.kind,
                order_ref=r.order_ref,
                issued_at=r.issued_at or now,
                total=Decimal(r.total),
                original_invoice_number=r.original_invoice_number,
            )
            for r in chunk
        )
        return ListedPage(items, page + 1 if start + PAGE_SIZE < len(matching) else None)

    # -- ground truth --------------------------------------------------------------------------
    def stats(self, now: datetime) -> dict[str, Any]:
        """Calls by outcome, invoices issued, and duplicates per serial and per seller order."""
        self.settle_all(now)
        issued = [r for r in self.records if r.status == "issued"]
        per_serial = Counter(r.serial_no for r in issued)
        per_order = Counter((r.seller_tax_id, r.order_ref) for r in issued if r.kind == "blue")
        return {
            "profile": self.faults.profile,
            "faults": self.faults.as_dict(),
            "calls": dict(sorted(self.calls.items())),
            "invoices_issued": len(issued),
            "blue_issued": sum(1 for r in issued if r.kind == "blue"),
            "red_issued": sum(1 for r in issued if r.kind == "red"),
            "pending": sum(1 for r in self.records if r.status == "pending"),
            "failed": sum(1 for r in self.records if r.status == "failed"),
            "duplicates": {
                "by_serial": sum(n - 1 for n in per_serial.values() if n > 1),
                "by_order": sum(n - 1 for n in per_order.values() if n > 1),
            },
        }

    def reset(self, seed: int | None = None) -> None:
        """Forget everything (tests and drills); the journal is truncated too."""
        if seed is not None:
            self.seed = seed
        path = self.journal_path
        self.close()
        if path is not None and path.exists():
            path.unlink()
        self.__post_init__()
