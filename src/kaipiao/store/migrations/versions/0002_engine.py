"""engine: invoice region and resend_after, shared seller quota

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kaipiao.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("region", sa.String(length=2), server_default="31", nullable=False)
        )
        batch_op.add_column(
            sa.Column("resend_after", kaipiao.store.types.UtcDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "seller_quota",
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", kaipiao.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_seller_quota_seller_id_sellers")
        ),
        sa.PrimaryKeyConstraint("seller_id", name=op.f("pk_seller_quota")),
    )


def downgrade() -> None:
    op.drop_table("seller_quota")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("resend_after")
        batch_op.drop_column("region")
