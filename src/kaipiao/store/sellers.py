"""Sellers and API keys. Keys are stored as SHA-256 hashes: they carry 256 bits of randomness,
so a slow password hash would add cost without adding safety."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
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


def find_principal(conn: Connection, key_hash: str) -> Principal | None:
    query = (
        select(api_keys.c.id.label("key_id"), api_keys.c.is_admin.label("key_is_admin"), sellers)
        .select_from(api_keys.outerjoin(sellers, api_keys.c.seller_id == sellers.c.id))
        .where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    )
    row = (conn.execute(query)).first()
    if row is None:
        return None
    seller = _seller(row) if row.tax_id is not None else None
    return Principal(key_id=row.key_id, seller=seller, is_admin=bool(row.key_is_admin))


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
