"""The outbound-request policy: where a call that a tenant can steer may go.

Every outbound request whose destination a seller chooses goes through this module: webhook
deliveries now (`kaipiao.engine.webhooks`); file downloads and email, when kaipiao gains them,
must use it too (`OutboundPolicy.session`, `OutboundPolicy.check_submission`). Calls to the tax
platform are not tenant-steered (the operator configures their URLs) and do not use it.

The rules, in the order they apply:

1. **Parse and normalise** (`parse`): only `http` and `https`; a host is required; no user
   information, spaces or control characters; IDNA host names; numeric host forms other than a
   canonical dotted quad (`2130706433`, `0x7f.1`, `127.1`) are refused, since resolvers disagree
   on what they mean.
2. **At submission** (`check_submission`): a literal IP host is checked against the deny list. A
   name cannot be checked yet (what it resolves to may change), so it passes.
3. **At delivery** (`session`): the name is resolved, *every* address is checked, and the
   connection goes to the checked addresses (aiohttp connects to what the resolver returned), so
   a DNS answer that changes between the check and the connection (rebinding) cannot swap it.
   Redirects are never followed.

The deny list (`denied_reason`): every address that is not globally routable — loopback,
private (RFC 1918, ULA), link-local, shared (CGNAT), multicast, unspecified, reserved,
documentation — after unwrapping IPv4 embedded in IPv6 (IPv4-mapped `::ffff:a.b.c.d`, NAT64
`64:ff9b::/96`, 6to4 `2002::/16`), plus the cloud metadata addresses, which are refused even
when an operator allows the network they sit in. An operator may allow named private networks
(`Settings.outbound_allow_networks`) for receivers on premises.

Refusals are `OutboundRefused` with a coarse `reason` that is safe to show a seller; the
details (which address, which rule) go to the operator's log only.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

log = logging.getLogger("kaipiao.outbound")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL = 2048
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Tencent Cloud
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server (a public address)
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)


class OutboundRefused(Exception):
    """A destination the policy refuses. `reason` is coarse and may be shown to a seller:
    `invalid_url`, `scheme_not_allowed`, `destination_not_allowed`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # normalised
    host: str  # a lower-case name (IDNA) or an IP literal without brackets
    literal: Address | None


def _unwrap(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), or the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
    """CIDR networks from a comma-separated string or a list; ValueError for a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in items if n.strip())


class OutboundPolicy:
    """Where tenant-steered requests may go. `allow_networks`: private networks an operator
    allows (e.g. an on-premise receiver at 10.1.2.3); empty by default."""

    def __init__(self, allow_networks: Iterable[Network] = ()) -> None:
        self.allow_networks = tuple(allow_networks)

    def denied_reason(self, address: Address) -> str | None:
        """Why `address` may not be called (for the operator's log), or None if it may."""
        plain = _unwrap(address)
        if address in METADATA or plain in METADATA:
            return "a cloud metadata address"
        if any(address in n or plain in n for n in self.allow_networks):
            return None
        for name in ("loopback", "unspecified", "link_local", "multicast", "private",
                     "reserved"):  # fmt: skip
            if getattr(plain, f"is_{name}"):  # an embedded IPv4 address is judged as itself
                return f"a {name.replace('_', '-')} address"
        if not plain.is_global:
            return "not a globally routable address"
        return None

    def check_address(self, address: Address, url: str = "") -> None:
        reason = self.denied_reason(address)
        if reason is not None:
            log.warning("outbound request to %s refused: %s is %s", url, address, reason)
            raise OutboundRefused(
                "destination_not_allowed", "the destination address is not allowed"
            )

    def parse(self, url: str) -> Target:
        """The normalised target of `url`; OutboundRefused if it is not an acceptable URL."""
        if len(url) > MAX_URL or _BAD_CHARS.search(url):
            raise OutboundRefused("invalid_url", "the URL is too long or has invalid characters")
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            raise OutboundRefused("invalid_url", "the URL cannot be parsed") from None
        if parsed.scheme not in ("http", "https"):
            raise OutboundRefused("scheme_not_allowed", "only http and https URLs are allowed")
        host = parsed.raw_host
        if not host or not parsed.is_absolute():
            raise OutboundRefused("invalid_url", "the URL has no host")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise OutboundRefused("invalid_url", "the URL may not carry credentials")
        try:
            port = parsed.port
        except ValueError:
            raise OutboundRefused("invalid_url", "the URL's port is not valid") from None
        if port is None or not 0 < port < 65536:
            raise OutboundRefused("invalid_url", "the URL's port is not valid")
        host = host.strip("[]").lower()
        try:
            literal: Address | None = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            literal = None
        if literal is None:
            name = host.rstrip(".")
            if _NUMERIC_LABEL.fullmatch(name.split(".")[-1]):
                raise OutboundRefused("invalid_url", "numeric host names are not allowed")
            if name == "localhost" or name.endswith(".localhost"):
                raise OutboundRefused("destination_not_allowed", "localhost is not allowed")
        if literal is not None and "%" in host:
            raise OutboundRefused("invalid_url", "scoped IPv6 addresses are not allowed")
        return Target(str(parsed.with_fragment(None)), host, literal)

    def check_target(self, url: str) -> Target:
        """Parse `url` and check a literal host; OutboundRefused if either fails. A host name
        passes here: the session's resolver checks what it resolves to, at each connection."""
        target = self.parse(url)
        if target.literal is not None:
            self.check_address(target.literal, url)
        return target

    def check_submission(self, url: str) -> str:
        """At submission: the normalised URL if it is acceptable (`check_target`)."""
        return self.check_target(url).url

    def session(self, timeout_s: float, **kwargs: Any) -> aiohttp.ClientSession:
        """An aiohttp session whose connections go only to addresses this policy allows, as
        resolved once per connection; no proxy from the environment. Callers must still pass
        `allow_redirects=False` and call `check_target` first (IP literals skip resolvers)."""
        connector = aiohttp.TCPConnector(resolver=CheckingResolver(self), use_dns_cache=False)
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s),
            trust_env=False, **kwargs,
        )  # fmt: skip


class CheckingResolver(AbstractResolver):
    """Resolve, then refuse the whole answer if any address is denied: a name that resolves
    to one public and one private address is refused rather than half-trusted."""

    def __init__(self, policy: OutboundPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            address = ipaddress.ip_address(answer["host"].split("%")[0])
            reason = self.policy.denied_reason(address)
            if reason is not None:
                log.warning("outbound request to %s refused: it resolves to %s, %s",
                            host, address, reason)  # fmt: skip
                raise OutboundRefused(
                    "destination_not_allowed", "the destination address is not allowed"
                )
        return answers

    async def close(self) -> None:
        await self.inner.close()
