"""Sending one email through a seller's SMTP server, with the outbound policy applied.

The seller chooses the SMTP host, so the connection is checked like any seller-steered call
(`platform/outbound.py`): the name is resolved, every address is checked, and the socket goes to
a checked address, while TLS still verifies the certificate against the host *name*. Security is
`starttls` (port 587: plain, then STARTTLS, refused if the server does not offer it), `tls`
(port 465: TLS from the first byte), or `none` (only for test servers on an allowed network).

Every answer is classified once, here:
- `Sent`: the server accepted the message.
- `Refused`: a 5xx reply (bad address, relay denied, message rejected, authentication failed):
  sending it again will be refused again. The reply is kept for the seller to read.
- `Deferred`: a 4xx reply, a refused or dropped connection, a timeout: try again later.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from ipaddress import ip_address
from typing import Any

from kaipiao.platform.outbound import OutboundPolicy, OutboundRefused

SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True, slots=True)
class SmtpAccount:
    host: str
    port: int
    security: str  # starttls | tls | none
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Sent:
    reply: str = ""


@dataclass(frozen=True, slots=True)
class Refused:
    reply: str


@dataclass(frozen=True, slots=True)
class Deferred:
    reason: str


SendOutcome = Sent | Refused | Deferred


def _checked_connection(
    policy: OutboundPolicy, host: str, port: int, timeout: float
) -> socket.socket:
    """A TCP connection to `host` at an address the policy allows (every address checked)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, address in infos:
        policy.check_address(ip_address(str(address[0]).split("%")[0]), f"smtp://{host}")
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"no address for {host}")


class _Smtp(smtplib.SMTP):
    policy: OutboundPolicy
    _host: str  # smtplib's: the name TLS verifies (set by __init__ only when given a host)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return _checked_connection(self.policy, host, port, timeout)


class _SmtpTls(smtplib.SMTP_SSL):
    policy: OutboundPolicy
    _host: str
    context: ssl.SSLContext

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = _checked_connection(self.policy, host, port, timeout)
        return self.context.wrap_socket(raw, server_hostname=host)


def _reply(code: int, message: Any) -> str:
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    return f"{code} {text}"[:500]


def send(
    account: SmtpAccount,
    message: EmailMessage,
    policy: OutboundPolicy,
    *,
    timeout_s: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> SendOutcome:
    """Send `message` (blocking: run it in a thread). Never raises for SMTP behaviour."""
    context = context or ssl.create_default_context()
    try:
        policy.check_target(f"http://{account.host}:{account.port}/")  # the host's form
        client: _Smtp | _SmtpTls
        if account.security == "tls":
            client = _SmtpTls(timeout=timeout_s, context=context)
            client.context = context
        else:
            client = _Smtp(timeout=timeout_s)
        client.policy = policy  # set before connecting: `_get_socket` uses it
        client._host = account.host  # STARTTLS verifies the certificate against this name
        client.connect(account.host, account.port)
        with client:
            if account.security == "starttls":
                client.ehlo()
                if not client.has_extn("starttls"):
                    return Refused("the server does not offer STARTTLS")
                client.starttls(context=context)
                client.ehlo()
            if account.username:
                client.login(account.username, account.password or "")
            refused = client.send_message(message)
        if refused:
            code, text = next(iter(refused.values()))
            return Refused(_reply(code, text))
        return Sent()
    except OutboundRefused as exc:
        return Refused(f"the SMTP server's address is not allowed ({exc.reason})")
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return Refused(_reply(code, text)) if code >= 500 else Deferred(_reply(code, text))
    except smtplib.SMTPResponseException as exc:
        reply = _reply(exc.smtp_code, exc.smtp_error)
        return Refused(reply) if exc.smtp_code >= 500 else Deferred(reply)
    except ssl.SSLCertVerificationError as exc:
        return Refused(f"the SMTP server's certificate does not verify: {exc.verify_message}")
    except (smtplib.SMTPException, OSError) as exc:
        return Deferred(f"{type(exc).__name__}: {exc}"[:500])
