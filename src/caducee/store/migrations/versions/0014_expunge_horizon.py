"""pruning of expunged UIDs: per-folder horizon

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imap_expunge_horizon",
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"], name=op.f("fk_imap_expunge_horizon_folder_id_folders")
        ),
        sa.PrimaryKeyConstraint("folder_id", name=op.f("pk_imap_expunge_horizon")),
    )


def downgrade() -> None:
    op.drop_table("imap_expunge_horizon")
