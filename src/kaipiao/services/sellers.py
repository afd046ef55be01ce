"""Registering sellers and their API keys."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from kaipiao.domain.codes import is_region
from kaipiao.domain.credit_code import CheckMode, validate_tax_id
from kaipiao.domain.errors import DomainError
from kaipiao.domain.invoice import MAX_LINES
from kaipiao.domain.money import decimal_places
from kaipiao.domain.sellers import Seller
from kaipiao.services import ids
from kaipiao.services.errors import Conflict, NotFound, ServiceError
from kaipiao.services.keys import hash_key, new_webhook_secret
from kaipiao.store import events
from kaipiao.store import sellers as repo
from kaipiao.store.database import Conn, Database


@dataclass(frozen=True, slots=True)
class NewSeller:
    seller: Seller
    api_key: str


def _check_limits(quota_per_s: float | None, allowed_networks: tuple[str, ...]) -> None:
    if quota_per_s is not None and not 0 < quota_per_s < 1e6:
        raise ServiceError("quota must be > 0 calls/s", "invalid_quota")
    for network in allowed_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ServiceError(f"{network!r} is not a CIDR network", "invalid_network") from None


async def set_limits(
    db: Database, seller_id: str, *, quota_per_s: float | None, allowed_networks: tuple[str, ...],
    now: datetime, by: str | None = None,
) -> None:  # fmt: skip
    """Change a seller's platform quota and allowed caller networks. Running API processes see
    the networks within their key cache time (30 s); workers read the quota as they refresh.
    With `by` (an operator), a `seller_limits_set` ledger event names them."""
    _check_limits(quota_per_s, allowed_networks)

    def work(conn: Conn) -> None:
        done = repo.set_limits(conn, seller_id, quota_per_s=quota_per_s,
                               allowed_networks=allowed_networks)  # fmt: skip
        if not done:
            raise NotFound(f"no seller {seller_id}", "seller_not_found")
        if by is not None:
            events.append_action(conn, by=by, type="seller_limits_set", seller_id=seller_id,
                                 payload={"quota_per_s": quota_per_s,
                                          "allowed_networks": list(allowed_networks)},
                                 now=now)  # fmt: skip

    await db.write(work)


async def add_seller(
    db: Database,
    *,
    name: str,
    tax_id: str,
    now: datetime,
    region: str = "31",
    quota_per_s: float | None = None,
    invoice_limit: Decimal | None = None,
    tax_id_check: CheckMode = CheckMode.REJECT,
    allowed_networks: tuple[str, ...] = (),
    platform: tuple[str, dict[str, str]] | None = None,
    max_lines: int | None = None,
    limit_includes_tax: bool = False,
    by: str | None = None,
) -> NewSeller:
    """Register a seller and its first API key; the key is returned once and stored hashed.
    `platform` is the seller's own provider account (name, stored settings), if it has one.
    With `by` (an operator), a `seller_added` ledger event names them.
    `invoice_limit` (on the total excluding tax, or including it with `limit_includes_tax`) and
    `max_lines` split an order over them into several invoices (kaipiao.domain.split)."""
    try:
        validate_tax_id(tax_id)
    except DomainError as exc:
        raise ServiceError(exc.message, "invalid_seller_tax_id") from None
    if not is_region(region):
        raise ServiceError(f"unknown province code {region!r}", "invalid_region")
    _check_limits(quota_per_s, allowed_networks)
    if invoice_limit is not None and invoice_limit <= 0:
        raise ServiceError("invoice limit must be > 0", "invalid_invoice_limit")
    if invoice_limit is not None and decimal_places(invoice_limit) > 2:
        raise ServiceError("invoice limit is an amount with at most 2 decimals",
                           "invalid_invoice_limit")  # fmt: skip
    if max_lines is not None and not 2 <= max_lines <= MAX_LINES:
        raise ServiceError(f"max lines must be 2 to {MAX_LINES}", "invalid_max_lines")
    seller = Seller(
        id=ids.seller_id(),
        name=name,
        tax_id=tax_id,
        region=region,
        quota_per_s=quota_per_s,
        invoice_limit=invoice_limit,
        tax_id_check=tax_id_check,
        allowed_networks=allowed_networks,
        webhook_secret=new_webhook_secret(),
        created_at=now,
        max_lines=max_lines,
        limit_includes_tax=limit_includes_tax,
    )
    api_key = ids.new_api_key()

    def work(conn: Conn) -> None:
        if repo.find_seller_by_tax_id(conn, tax_id) is not None:
            raise Conflict(f"a seller with tax id {tax_id} exists", "seller_exists")
        repo.insert_seller(conn, seller)
        repo.insert_api_key(
            conn, key_id=ids.key_id(), seller_id=seller.id, key_hash=hash_key(api_key),
            prefix=api_key[:8], is_admin=False, now=now,
        )  # fmt: skip
        if platform is not None:
            repo.insert_platform(conn, seller.id, platform[0], platform[1], now)
        if by is not None:
            events.append_action(conn, by=by, type="seller_added", seller_id=seller.id,
                                 payload={"name": name}, now=now)  # fmt: skip

    await db.write(work)
    return NewSeller(seller, api_key)


async def add_admin_key(db: Database, *, now: datetime) -> str:
    """An operator key: sees operational status, belongs to no seller."""
    api_key = ids.new_api_key()
    await db.write(
        lambda conn: repo.insert_api_key(
            conn, key_id=ids.key_id(), seller_id=None, key_hash=hash_key(api_key),
            prefix=api_key[:8], is_admin=True, now=now,
        )
    )  # fmt: skip
    return api_key


async def list_sellers(db: Database) -> list[Seller]:
    return await db.read(repo.list_sellers)


async def platforms(db: Database) -> dict[str, str]:
    """Seller id → its own platform (sellers on the default platform are absent)."""
    return await db.read(repo.platforms)


async def authenticate(db: Database, api_key: str, now: datetime) -> repo.Principal | None:
    return await principal_for(db, hash_key(api_key), now)


async def principal_for(db: Database, key_hash: str, now: datetime) -> repo.Principal | None:
    """Who holds the API key of this hash (`hash_key`), or None if no live key has it."""
    return await db.read(lambda conn: repo.find_principal(conn, key_hash, now))
