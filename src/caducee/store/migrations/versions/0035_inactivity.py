"""The CNIL inactivity rule (issue 19): per mailbox, when its owner and the practice's admins
were told it will be deleted for inactivity (``notice_at``), and the practice's exemption
(``exempt_reason``, by whom, when)

Revision ID: 0035
Revises: 0033
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mailbox_inactivity",
        sa.Column("mailbox_id", sa.Integer, sa.ForeignKey("mailboxes.id"), primary_key=True),
        sa.Column("notice_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exempt_reason", sa.String(500), nullable=True),
        sa.Column("exempt_by", sa.String(320), nullable=True),
        sa.Column("exempt_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("mailbox_inactivity")
