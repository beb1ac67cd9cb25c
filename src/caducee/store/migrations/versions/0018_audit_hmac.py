"""Audit trail: HMAC-SHA256 chain and a sealed head in the anchor

Records written before this revision keep their SHA-256 chain (``chain`` = 1) and verify as
they are; the anchor gets the head of the chain (last sequence number and MAC), the sequence
number from which records are HMAC-chained, and the anchor's own MAC. Computing those needs the
master key, which migrations do not have: ``open_app(upgrade=True)`` seals the anchor right
after upgrading to this revision (``caducee.services.audit.seal_anchor``).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chain", sa.SmallInteger(), server_default="1", nullable=False)
        )
    with op.batch_alter_table("audit_anchor", schema=None) as batch_op:
        batch_op.add_column(sa.Column("head_seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("head_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("keyed_from", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_anchor", schema=None) as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("keyed_from")
        batch_op.drop_column("head_hash")
        batch_op.drop_column("head_seq")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("chain")
