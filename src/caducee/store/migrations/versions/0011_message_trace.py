"""message trace, read-receipt setting, outbound trace key, messages by date

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_folder_date", "messages", ["folder_id", "internal_date"])
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_key", sa.String(length=64), nullable=True))
    op.create_table(
        "message_trace",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("trace_key", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("event", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.String(length=500), server_default="", nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_message_trace_mailbox_id_mailboxes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_trace")),
    )
    op.create_index("ix_message_trace_mailbox_key", "message_trace", ["mailbox_id", "trace_key"])
    op.create_table(
        "mailbox_settings",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("read_receipts", sa.Boolean(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_mailbox_settings_mailbox_id_mailboxes")
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_mailbox_settings")),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_folder_date", table_name="messages")
    op.drop_table("mailbox_settings")
    op.drop_index("ix_message_trace_mailbox_key", table_name="message_trace")
    op.drop_table("message_trace")
    with op.batch_alter_table("outbound_messages", schema=None) as batch_op:
        batch_op.drop_column("trace_key")
