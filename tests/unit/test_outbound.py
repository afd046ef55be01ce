"""The outbound policy, as an attacker would try to get past it: every address form of the
deny list, URL tricks, and the operator's allowed networks."""

from __future__ import annotations

import ipaddress

import pytest

from kaipiao.platform.outbound import OutboundPolicy, OutboundRefused, parse_networks

DENIED = [
    "127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "10.0.0.1", "172.16.5.5", "192.168.1.1",
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "fd00:ec2::254",
    "fe80::1", "fc00::1", "224.0.0.1", "ff02::1", "100.64.0.1", "192.0.2.1", "240.0.0.1",
    "255.255.255.255", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1",
    "2002:7f00:1::1", "2002:a9fe:a9fe::1",
]  # fmt: skip
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", DENIED)
def test_every_non_public_address_form_is_denied(address: str) -> None:
    assert OutboundPolicy().denied_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert OutboundPolicy().denied_reason(ipaddress.ip_address(address)) is None


def test_allowed_networks_open_private_ranges_but_never_metadata() -> None:
    policy = OutboundPolicy(parse_networks("127.0.0.0/8, 169.254.0.0/16, 10.0.0.0/8"))
    assert policy.denied_reason(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.denied_reason(ipaddress.ip_address("::ffff:10.1.2.3")) is None
    assert policy.denied_reason(ipaddress.ip_address("169.254.169.254")) is not None
    assert policy.denied_reason(ipaddress.ip_address("192.168.0.1")) is not None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "scheme_not_allowed"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("gopher://example.com/", "scheme_not_allowed"),
        ("http://", "invalid_url"),
        ("http:///path", "invalid_url"),
        ("http://exa mple.com/", "invalid_url"),
        ("http://example.com/a b", "invalid_url"),
        ("http://user:pw@example.com/", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
        ("http://example.com/\x00", "invalid_url"),
        ("http://2130706433/", "invalid_url"),
        ("http://0x7f.1/", "invalid_url"),
        ("http://127.1/", "invalid_url"),
        ("http://017700000001/", "invalid_url"),
        ("http://localhost:8000/", "destination_not_allowed"),
        ("http://api.localhost/", "destination_not_allowed"),
        ("http://127.0.0.1:8000/control/reset", "destination_not_allowed"),
        ("http://[::1]/", "destination_not_allowed"),
        ("http://[::ffff:127.0.0.1]/", "destination_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "destination_not_allowed"),
        ("http://[fe80::1%25eth0]/", "invalid_url"),
        ("http://example.com/" + "a" * 2100, "invalid_url"),
    ],
)
def test_submission_refuses_bad_and_internal_urls(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        OutboundPolicy().check_submission(url)
    assert refused.value.reason == reason


def test_a_good_url_is_normalised() -> None:
    policy = OutboundPolicy()
    assert policy.check_submission("HTTPS://Example.COM:443/hook?x=1#frag") == (
        "https://example.com/hook?x=1"
    )
    assert policy.check_submission("http://8.8.8.8/hook") == "http://8.8.8.8/hook"
    # Names pass at submission (checked after resolution at each delivery).
    assert policy.check_submission("https://hooks.example.com/x").startswith("https://")


def test_loopback_is_accepted_only_when_the_operator_allows_it() -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy().check_submission("http://127.0.0.1:9/hook")
    allowed = OutboundPolicy(parse_networks("127.0.0.0/8"))
    assert allowed.check_submission("http://127.0.0.1:9/hook") == "http://127.0.0.1:9/hook"
