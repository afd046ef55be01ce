"""console: operators and their sessions; indexes for the console's invoice search

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kaipiao.store.types

revision = "0011"
# The lead re-chains migrations when merging; in this branch it follows h7's 0009.
down_revision = "0010"
branch_labels = None
depends_on = None
UTC_TIME = kaipiao.store.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("token_hash", sa.Text(), nullable=True),
        sa.Column("token_expires_at", UTC_TIME, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("disabled_at", UTC_TIME, nullable=True),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("operator_id", sa.String(32), sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    op.create_index("ix_invoices_order_id", "invoices", ["order_id", "id"])
    op.create_index("ix_invoices_number", "invoices", ["invoice_number"])
    op.create_index("ix_invoices_status_listing", "invoices", ["status", "id"])
    op.create_index("ix_invoices_issued_at", "invoices", ["issued_at"])
    # The buyer is a JSON document: its name and tax id are indexed as expressions, the same
    # expressions kaipiao.store.search compares.
    for field in ("name", "tax_id"):
        op.create_index(f"ix_invoices_buyer_{field}", "invoices", [buyer_field(field)])


def buyer_field(field: str) -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text(f"json_extract(buyer, '$.{field}')")
    return sa.text(f"(buyer::json ->> '{field}')")


def downgrade() -> None:
    for name in (
        "ix_invoices_buyer_tax_id",
        "ix_invoices_buyer_name",
        "ix_invoices_issued_at",
        "ix_invoices_status_listing",
        "ix_invoices_number",
        "ix_invoices_order_id",
    ):
        op.drop_index(name, table_name="invoices")
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("operators")
