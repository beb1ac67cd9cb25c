"""The practice's charter (issue 16): accepted message types, response delay, opening hours,
closures, holiday region, emergency and free texts, per practice and per practitioner

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "practice_charters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["practices.id"],
            name=op.f("fk_practice_charters_practice_id_practices"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_practice_charters_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practice_charters")),
        sa.UniqueConstraint(
            "practice_id", "account_id", name="uq_practice_charters_practice_account"
        ),
    )
    op.create_index(
        "uq_practice_charters_practice_wide",
        "practice_charters",
        ["practice_id"],
        unique=True,
        sqlite_where=sa.text("account_id IS NULL"),
        postgresql_where=sa.text("account_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_practice_charters_practice_wide", table_name="practice_charters")
    op.drop_table("practice_charters")
