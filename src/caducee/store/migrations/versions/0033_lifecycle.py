"""Accounts and mailboxes (issue 19): a mailbox being deleted (``deleted_at``: its data key is
gone, its rows and blobs are being removed), and the last use of each account and mailbox
(``last_used_at``, written at most once an hour)

Revision ID: 0033
Revises: 0026
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("last_used_at")
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("deleted_at")
