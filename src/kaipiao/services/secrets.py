"""Provider secrets at rest: encrypted with the deployment's key, or referenced from the
environment, never stored in the clear and never logged.

A value given as `env:NAME` is stored as that reference and read from the process environment
when the account is used (the environment is handed in by the caller, at the edge). Any other
value is stored as `enc:` + Fernet (AES-128-CBC with HMAC-SHA256) under the key in
`secrets.key` of the data directory (created on first use, mode 0600), or the key given by
`KAIPIAO_SECRETS_KEY` / `KAIPIAO_SECRETS_KEY_FILE` (every replica of a deployment shares it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

ENV = "env:"
ENC = "enc:"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretError(ValueError):
    """A secret that cannot be stored or read; the text says which and why, never its value."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise SecretError("the secrets key is not a Fernet key (32 url-safe base64-encoded "
                              "bytes)") from None  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> SecretBox:
        """The key in `path`, which must exist (a mounted Secret, shared by every replica)."""
        return cls(path.read_bytes().strip())

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, value: str) -> str:
        """What to store for `value`: its `env:` reference as given, or its ciphertext."""
        if value.startswith(ENV):
            if not _ENV_NAME.fullmatch(value[len(ENV) :]):
                raise SecretError(f"{value!r} is not env:NAME with a valid variable name")
            return value
        if not value:
            raise SecretError("a secret cannot be empty")
        return ENC + self._fernet.encrypt(value.encode()).decode()

    def open(self, stored: str, environ: Mapping[str, str], what: str) -> str:
        """The secret behind `stored`; `what` names it in errors."""
        if stored.startswith(ENV):
            name = stored[len(ENV) :]
            value = environ.get(name)
            if not value:
                raise SecretError(f"{what}: the environment variable {name} is not set")
            return value
        if stored.startswith(ENC):
            try:
                return self._fernet.decrypt(stored[len(ENC) :].encode()).decode()
            except InvalidToken:
                raise SecretError(f"{what} does not decrypt with this deployment's secrets key "
                                  "(was it encrypted under another one?)") from None  # fmt: skip
        raise SecretError(f"{what} is stored in an unknown form")
