"""Failures of use cases, each with a stable code (the API maps codes to HTTP statuses).

ServiceError
 ├── NotFound                not_found
 ├── Conflict                order_conflict, already_issued, not_cancellable,
 │                           idempotency_key_reused, request_in_progress, not_issued
 └── Unauthorized / Forbidden / RateLimited  (raised by the API's guards)
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "service_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"
