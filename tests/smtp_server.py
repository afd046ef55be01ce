"""A real SMTP server process for the delivery tests (aiosmtpd), run as
`python -m tests.smtp_server PORT DIR [--refuse] [--starttls|--tls CERT KEY]`: every message it accepts
is written to DIR/<n>.eml; with --refuse it answers every recipient `550 5.1.1 mailbox
unavailable`; with --starttls it offers STARTTLS with that certificate and requires it; with
--tls it speaks TLS from the first byte (port 465 style); with --auth USER PASS it requires
that login.
It prints `ready` once listening and runs until killed."""

from __future__ import annotations

import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Keep:
    def __init__(self, directory: Path, refuse: bool) -> None:
        self.directory = directory
        self.refuse = refuse
        self.count = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        (self.directory / f"{self.count}.eml").write_bytes(envelope.original_content)
        return "250 Message accepted"


def main() -> None:
    port, directory = int(sys.argv[1]), Path(sys.argv[2])
    tls: dict[str, Any] = {}
    for flag in ("--starttls", "--tls"):
        if flag in sys.argv:
            at = sys.argv.index(flag)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(sys.argv[at + 1], sys.argv[at + 2])
            tls = ({"tls_context": context, "require_starttls": True} if flag == "--starttls"
                   else {"ssl_context": context})  # fmt: skip
    if "--auth" in sys.argv:  # only this user and password may send (after STARTTLS)
        at = sys.argv.index("--auth")
        wanted = (sys.argv[at + 1].encode(), sys.argv[at + 2].encode())

        def check(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:  # fmt: skip
            return AuthResult(success=(data.login, data.password) == wanted)

        tls |= {"authenticator": check, "auth_required": True}
    controller = Controller(Keep(directory, "--refuse" in sys.argv), hostname="127.0.0.1",
                            port=port, **tls)  # fmt: skip
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
