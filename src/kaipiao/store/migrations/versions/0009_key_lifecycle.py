"""keys: an API key may expire (the old key's overlap after a rotation); the webhook secret keeps
its predecessor, valid until a time, so deliveries carry both signatures during a rotation

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import kaipiao.store.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
UTC_TIME = kaipiao.store.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", UTC_TIME, nullable=True))
    with op.batch_alter_table("sellers") as batch:
        batch.add_column(sa.Column("webhook_secret_previous", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("webhook_secret_previous_until", UTC_TIME, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sellers") as batch:
        batch.drop_column("webhook_secret_previous_until")
        batch.drop_column("webhook_secret_previous")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
