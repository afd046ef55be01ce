"""sellers: a seller's own provider account (Nuonuo), secrets encrypted or referenced

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kaipiao.store.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None
UTC_TIME = kaipiao.store.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "seller_platforms",
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"]),
        sa.PrimaryKeyConstraint("seller_id"),
    )


def downgrade() -> None:
    op.drop_table("seller_platforms")
