"""Sellers and API keys. Keys are stored as SHA-256 hashes: they carry 256 bits of randomness,
so a slow password hash would add cost without adding safety."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection

from kaipiao.domain.credit_code import CheckMode
from kaipiao.domain.sellers import Seller
from kaipiao.store.tables import api_keys, seller_platforms, sellers


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: one seller, or an operator (admin key, no seller)."""

    key_id: str
    seller: Seller | None
    is_admin: bool
    expires_at: datetime | None = None  # the old key's end after a rotation


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An API key as an operator sees it: never the key, only its id and first characters."""

    id: str
    seller_id: str | None
    prefix: str
    is_admin: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def _seller(row: Any) -> Seller:
    return Seller(
        id=row.id,
        name=row.name,
        tax_id=row.tax_id,
        region=row.region,
        quota_per_s=row.quota_per_s,
        invoice_limit=row.invoice_limit,
        tax_id_check=CheckMode(row.tax_id_check),
        allowed_networks=tuple(json.loads(row.allowed_networks)),
        webhook_secret=row.webhook_secret,
        created_at=row.created_at,
        max_lines=row.max_lines,
        limit_includes_tax=bool(row.limit_includes_tax),
    )


def insert_seller(conn: Connection, seller: Seller) -> None:
    conn.execute(
        insert(sellers).values(
            id=seller.id,
            name=seller.name,
            tax_id=seller.tax_id,
            region=seller.region,
            quota_per_s=seller.quota_per_s,
            invoice_limit=seller.invoice_limit,
            tax_id_check=seller.tax_id_check.value,
            allowed_networks=json.dumps(list(seller.allowed_networks)),
            webhook_secret=seller.webhook_secret,
            created_at=seller.created_at,
            max_lines=seller.max_lines,
            limit_includes_tax=seller.limit_includes_tax,
        )
    )


def insert_api_key(
    conn: Connection,
    *,
    key_id: str,
    seller_id: str | None,
    key_hash: str,
    prefix: str,
    is_admin: bool,
    now: datetime,
) -> None:
    conn.execute(
        insert(api_keys).values(
            id=key_id,
            seller_id=seller_id,
            key_hash=key_hash,
            prefix=prefix,
            is_admin=is_admin,
            created_at=now,
        )
    )


def _live(now: datetime) -> Any:
    return (api_keys.c.revoked_at.is_(None)) & (
        or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now)
    )


def find_principal(conn: Connection, key_hash: str, now: datetime) -> Principal | None:
    """Who holds the live (not revoked, not expired at `now`) key with this hash."""
    query = (
        select(
            api_keys.c.id.label("key_id"), api_keys.c.is_admin.label("key_is_admin"),
            api_keys.c.expires_at.label("key_expires_at"), sellers,
        )
        .select_from(api_keys.outerjoin(sellers, api_keys.c.seller_id == sellers.c.id))
        .where(api_keys.c.key_hash == key_hash, _live(now))
    )  # fmt: skip
    row = (conn.execute(query)).first()
    if row is None:
        return None
    seller = _seller(row) if row.tax_id is not None else None
    return Principal(
        key_id=row.key_id, seller=seller, is_admin=bool(row.key_is_admin),
        expires_at=row.key_expires_at,
    )  # fmt: skip


def list_keys(conn: Connection, *, seller_id: str | None, admin: bool) -> list[KeyInfo]:
    """A seller's keys (`seller_id`), or the operator keys (`admin`), oldest first."""
    where = api_keys.c.is_admin.is_(True) if admin else api_keys.c.seller_id == seller_id
    rows = conn.execute(select(api_keys).where(where).order_by(api_keys.c.created_at))
    return [
        KeyInfo(r.id, r.seller_id, r.prefix, bool(r.is_admin), r.created_at, r.expires_at,
                r.revoked_at)
        for r in rows
    ]  # fmt: skip


def expire_keys(conn: Connection, *, seller_id: str | None, until: datetime, now: datetime) -> int:
    """End a seller's live keys (None: the operator keys) at `until`, unless they end sooner."""
    c = api_keys.c
    owner = c.is_admin.is_(True) if seller_id is None else c.seller_id == seller_id
    later = or_(c.expires_at.is_(None), c.expires_at > until)
    result = conn.execute(update(api_keys).where(owner, _live(now), later).values(expires_at=until))
    return int(result.rowcount)


def revoke_keys(
    conn: Connection, *, now: datetime, seller_id: str | None = None, key_id: str | None = None
) -> list[str]:
    """Revoke one key (`key_id`) or every live key of a seller; the ids revoked."""
    where = api_keys.c.id == key_id if key_id is not None else api_keys.c.seller_id == seller_id
    if key_id is not None and seller_id is not None:
        where = where & (api_keys.c.seller_id == seller_id)
    ids = [r.id for r in conn.execute(select(api_keys.c.id).where(where, _live(now)))]
    if ids:
        conn.execute(update(api_keys).where(api_keys.c.id.in_(ids)).values(revoked_at=now))
    return ids


def set_webhook_secret(
    conn: Connection, seller_id: str, secret: str, previous_until: datetime
) -> bool:
    """Make `secret` the seller's webhook secret; the old one signs too until `previous_until`."""
    result = conn.execute(
        update(sellers)
        .where(sellers.c.id == seller_id)
        .values(
            webhook_secret_previous=sellers.c.webhook_secret,
            webhook_secret_previous_until=previous_until, webhook_secret=secret,
        )
    )  # fmt: skip
    return bool(result.rowcount)


def set_limits(
    conn: Connection, seller_id: str, *, quota_per_s: float | None,
    allowed_networks: tuple[str, ...],
) -> bool:  # fmt: skip
    """Change the seller's platform quota (None: none) and allowed caller networks."""
    result = conn.execute(update(sellers).where(sellers.c.id == seller_id).values(
        quota_per_s=quota_per_s, allowed_networks=json.dumps(list(allowed_networks))))  # fmt: skip
    return bool(result.rowcount)


def list_sellers(conn: Connection) -> list[Seller]:
    rows = conn.execute(select(sellers).order_by(sellers.c.created_at, sellers.c.id))
    return [_seller(row) for row in rows]


def find_seller_by_tax_id(conn: Connection, tax_id: str) -> Seller | None:
    row = (conn.execute(select(sellers).where(sellers.c.tax_id == tax_id))).first()
    return _seller(row) if row else None


def get_seller(conn: Connection, seller_id: str) -> Seller | None:
    row = conn.execute(select(sellers).where(sellers.c.id == seller_id)).first()
    return _seller(row) if row else None


def insert_platform(
    conn: Connection, seller_id: str, platform: str, settings: dict[str, str], now: datetime
) -> None:
    row = {"seller_id": seller_id, "platform": platform, "settings": json.dumps(settings),
           "updated_at": now}  # fmt: skip
    conn.execute(insert(seller_platforms).values(**row))


def platform_of(conn: Connection, tax_id: str) -> tuple[str, dict[str, str]] | None:
    """The provider account of the seller with `tax_id`, or None for the default platform."""
    row = conn.execute(
        select(seller_platforms.c.platform, seller_platforms.c.settings)
        .join(sellers, sellers.c.id == seller_platforms.c.seller_id)
        .where(sellers.c.tax_id == tax_id)
    ).first()
    return (row.platform, json.loads(row.settings)) if row else None


def platforms(conn: Connection) -> dict[str, str]:
    """Seller id → platform name, for sellers with their own provider account."""
    rows = conn.execute(select(seller_platforms.c.seller_id, seller_platforms.c.platform))
    return {row.seller_id: row.platform for row in rows}
