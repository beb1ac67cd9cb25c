"""Quota notices and the télétransmission archive: the last quota threshold each mailbox's
owner was told of (0, 80, 95 or 100 %), and folders whose messages do not count towards the
mailbox's quota (the archive where a full TLT mailbox moves its old acknowledged lots)

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(
            sa.Column("quota_notified", sa.SmallInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("folders") as batch:
        batch.add_column(
            sa.Column("quota_exempt", sa.Boolean(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("folders") as batch:
        batch.drop_column("quota_exempt")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("quota_notified")
