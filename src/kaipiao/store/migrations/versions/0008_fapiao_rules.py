"""fapiao rules: split parts, merged orders' claims, partial reversal state, seller limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kaipiao.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None
MONEY = kaipiao.store.types.Money(precision=18, scale=2)


def upgrade() -> None:
    with op.batch_alter_table("sellers") as batch:
        batch.add_column(sa.Column("max_lines", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("limit_includes_tax", sa.Boolean(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("part", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("parts", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("order_ids", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reversible_total", MONEY, nullable=True))
        batch.add_column(sa.Column("reversible", sa.Text(), nullable=True))
    # What is reversible today: all of a blue invoice, nothing of a reversed one.
    op.execute(
        "UPDATE invoices SET reversible_total = CASE WHEN status = 'reversed' THEN '0.00' "
        "ELSE total END WHERE kind = 'blue'"
    )
    op.create_table(
        "order_claims",
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["sellers.id"], name=op.f("fk_order_claims_seller_id_sellers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_order_claims_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("seller_id", "order_id", name=op.f("pk_order_claims")),
    )
    op.create_index(op.f("ix_order_claims_invoice_id"), "order_claims", ["invoice_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_order_claims_invoice_id"), table_name="order_claims")
    op.drop_table("order_claims")
    with op.batch_alter_table("invoices") as batch:
        for name in ("reversible", "reversible_total", "order_ids", "parts", "part"):
            batch.drop_column(name)
    with op.batch_alter_table("sellers") as batch:
        batch.drop_column("limit_includes_tax")
        batch.drop_column("max_lines")
