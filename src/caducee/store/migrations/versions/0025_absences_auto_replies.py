"""Absences of practitioners and the auto-replies' memory (issue 16): who was answered when
(keyed pseudonyms), which messages were answered

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "absences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("replacement_account_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_absences_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["replacement_account_id"],
            ["accounts.id"],
            name=op.f("fk_absences_replacement_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_absences")),
        sa.UniqueConstraint("account_id", name=op.f("uq_absences_account_id")),
    )
    op.create_table(
        "auto_reply_senders",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("sender_key", sa.String(length=64), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_auto_reply_senders_mailbox_id_mailboxes"),
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "sender_key", name=op.f("pk_auto_reply_senders")),
    )
    op.create_index("ix_auto_reply_senders_last_at", "auto_reply_senders", ["last_at"])
    op.create_table(
        "auto_reply_messages",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("message_key", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_auto_reply_messages_mailbox_id_mailboxes"),
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "message_key", name=op.f("pk_auto_reply_messages")),
    )
    op.create_index("ix_auto_reply_messages_sent_at", "auto_reply_messages", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_auto_reply_messages_sent_at", table_name="auto_reply_messages")
    op.drop_table("auto_reply_messages")
    op.drop_index("ix_auto_reply_senders_last_at", table_name="auto_reply_senders")
    op.drop_table("auto_reply_senders")
    op.drop_table("absences")
