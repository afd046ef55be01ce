"""ledger: the chain head, signed checkpoints, and the chain over events written before

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kaipiao.ledger.chain import GENESIS, event_hash, time_text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_head")),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("time", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_ledger_checkpoints")),
    )
    # Events written before the chain existed are chained now, in the order they were written.
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, invoice_id, seller_id, type, created_at, payload FROM ledger_events "
            "ORDER BY id"
        )
    ).all()
    prev, seq = GENESIS, 0
    update = sa.text("UPDATE ledger_events SET seq = :seq, prev_hash = :prev, hash = :hash "
                     "WHERE id = :id")  # fmt: skip
    for row in rows:
        seq += 1
        digest = event_hash(
            seq, row.invoice_id, row.seller_id, row.type, time_text(row.created_at), row.payload,
            prev,
        )  # fmt: skip
        bind.execute(update, {"seq": seq, "prev": prev, "hash": digest, "id": row.id})
        prev = digest
    bind.execute(
        sa.text("INSERT INTO ledger_head (id, seq, hash) VALUES (1, :seq, :hash)"),
        {"seq": seq, "hash": prev},
    )


def downgrade() -> None:
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_head")
