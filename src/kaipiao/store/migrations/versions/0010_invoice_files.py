"""invoices: their stored files and email delivery; file_jobs, mail_deliveries: the outboxes;
seller_mail: a seller's SMTP sender

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kaipiao.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None
UTC_TIME = kaipiao.store.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        batch.add_column(sa.Column("files", sa.Text(), nullable=True))
        batch.add_column(sa.Column("delivery", sa.Text(), nullable=True))
    op.create_table(
        "file_jobs",
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("done_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    op.create_index("ix_file_jobs_due", "file_jobs", ["status", "next_attempt_at"])
    op.create_table(
        "seller_mail",
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(["seller_id"], ["sellers.id"]),
        sa.PrimaryKeyConstraint("seller_id"),
    )
    op.create_table(
        "mail_deliveries",
        sa.Column("invoice_id", sa.String(length=32), nullable=False),
        sa.Column("seller_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("invoice_id"),
    )
    op.create_index("ix_mail_deliveries_due", "mail_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_deliveries_due", table_name="mail_deliveries")
    op.drop_table("mail_deliveries")
    op.drop_table("seller_mail")
    op.drop_index("ix_file_jobs_due", table_name="file_jobs")
    op.drop_table("file_jobs")
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("delivery")
        batch.drop_column("files")
