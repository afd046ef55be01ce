"""One exception tree for every rule kaipiao enforces, each with a stable machine code.

    DomainError
     ├── InvalidInvoice            (one or more FieldProblems; code = the first problem's code)
     ├── ExceedsInvoiceLimit       exceeds_invoice_limit
     ├── IllegalTransition         illegal_transition
     ├── InvalidTaxId              invalid_buyer_tax_id (raised by the credit-code checker)
     ├── InvalidRate               invalid_tax_rate
     └── InvalidReversal           invalid_reverse_line, exceeds_reversible, invalid_amount
                                   (kaipiao.domain.reversal)

The codes are the API's `code` values: changing one is a breaking change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with one field: `loc` is the path into the request body."""

    code: str
    loc: tuple[str | int, ...]
    msg: str


class DomainError(Exception):
    """Base of every rule violation. `code` is stable and machine-readable."""

    code: str = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInvoice(DomainError):
    """An invoice request breaks one or more rules; `problems` lists each with its location."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        if not problems:
            raise ValueError("InvalidInvoice needs at least one problem")
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems))
        self.problems = tuple(problems)
        self.code = problems[0].code


class ExceedsInvoiceLimit(DomainError):
    code = "exceeds_invoice_limit"


class IllegalTransition(DomainError):
    code = "illegal_transition"


class InvalidTaxId(DomainError):
    code = "invalid_buyer_tax_id"


class InvalidRate(DomainError):
    code = "invalid_tax_rate"
