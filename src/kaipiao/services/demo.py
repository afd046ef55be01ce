"""The demo seller: on a first start with an empty store, `kaipiao serve` registers one so the
printed curl example works at once, and keeps its key in the data directory so that later starts
(and `kaipiao seller demo-key`) can show it again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kaipiao.clock import utcnow
from kaipiao.services import sellers
from kaipiao.store.database import Database

DEMO_TAX_ID = "91310110666007217T"
DEMO_FILE = "demo-seller.json"


@dataclass(frozen=True, slots=True)
class DemoSeller:
    seller_id: str
    api_key: str


def read_demo_seller(data_dir: Path) -> DemoSeller | None:
    """The demo seller created in `data_dir`, or None if there is none."""
    path = data_dir / DEMO_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return DemoSeller(data["seller_id"], data["api_key"])


async def ensure_demo_seller(db: Database, data_dir: Path) -> DemoSeller | None:
    """On a first start with an empty store, register a demo seller and keep its key (0600) in
    the data directory so later starts can show it again. None if other sellers exist."""
    existing = read_demo_seller(data_dir)
    if existing is not None:
        return existing
    if await sellers.list_sellers(db):
        return None
    created = await sellers.add_seller(
        db, name="Demo Seller (sandbox)", tax_id=DEMO_TAX_ID, now=utcnow(), region="31"
    )
    demo = DemoSeller(created.seller.id, created.api_key)
    path = data_dir / DEMO_FILE
    path.touch(mode=0o600)
    path.write_text(json.dumps({"seller_id": demo.seller_id, "api_key": demo.api_key}))
    return demo
