"""Nuonuo's request signature: Base64 of HMAC-SHA1 keyed with the app secret over

    a=services&l=v1&p=open&k={appkey}&i={senid}&n={nonce}&t={timestamp}&f={body}

where `{body}` is the exact request body text. Used by the adapter to sign and by the sandbox's
Nuonuo front to check; the reference's test vector is in tests/unit/test_nuonuo.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass


def signature(app_secret: str, app_key: str, senid: str, nonce: str, timestamp: str,
              body: str) -> str:  # fmt: skip
    message = f"a=services&l=v1&p=open&k={app_key}&i={senid}&n={nonce}&t={timestamp}&f={body}"
    digest = hmac.new(app_secret.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Envelope:
    """The query parameters of one call, fresh for each: a 32-character random `senid`, an
    8-digit `nonce`, Unix seconds."""

    senid: str
    nonce: str
    timestamp: str

    @classmethod
    def fresh(cls, now_s: float) -> Envelope:
        return cls(secrets.token_hex(16), str(10_000_000 + secrets.randbelow(90_000_000)),
                   str(int(now_s)))  # fmt: skip

    def params(self, app_key: str) -> dict[str, str]:
        return {"senid": self.senid, "nonce": self.nonce, "timestamp": self.timestamp,
                "appkey": app_key}  # fmt: skip


def verify(app_secret: str, params: dict[str, str], body: str, given: str) -> bool:
    """Whether `given` is the signature of this call (constant-time comparison)."""
    try:
        expected = signature(app_secret, params["appkey"], params["senid"], params["nonce"],
                             params["timestamp"], body)  # fmt: skip
    except KeyError:
        return False
    return hmac.compare_digest(expected, given)
