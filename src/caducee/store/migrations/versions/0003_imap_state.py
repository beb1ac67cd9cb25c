"""IMAP state: expunged UIDs (RFC 7162 VANISHED), UIDVALIDITY counter, \\Recent marker

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imap_expunged",
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"], name=op.f("fk_imap_expunged_folder_id_folders")
        ),
        sa.PrimaryKeyConstraint("folder_id", "uid", name=op.f("pk_imap_expunged")),
    )
    op.create_index("ix_imap_expunged_folder_modseq", "imap_expunged", ["folder_id", "modseq"])
    op.create_table(
        "imap_mailbox_state",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("last_uidvalidity", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_imap_mailbox_state_mailbox_id_mailboxes"),
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_imap_mailbox_state")),
    )
    op.create_table(
        "imap_folder_state",
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("recent_uid", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"], name=op.f("fk_imap_folder_state_folder_id_folders")
        ),
        sa.PrimaryKeyConstraint("folder_id", name=op.f("pk_imap_folder_state")),
    )
    op.create_table(
        "imap_subscriptions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_imap_subscriptions_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_imap_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("imap_subscriptions")
    op.drop_table("imap_folder_state")
    op.drop_table("imap_mailbox_state")
    op.drop_index("ix_imap_expunged_folder_modseq", table_name="imap_expunged")
    op.drop_table("imap_expunged")
