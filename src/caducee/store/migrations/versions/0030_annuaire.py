"""The national MSSanté directory (issue 18): imports, the current generation, rows and their
search tokens (per-generation partial indexes are built by the import, not here)

Revision ID: 0030
Revises: 0026
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
#: Other branches may add 0027–0029: chain this one after the newest at merge.
down_revision = "0027"
branch_labels = None
depends_on = None

_ENTRY_COLUMNS = (
    "email", "mailbox_type", "national_id", "pp_id", "civility", "last_name", "first_name",
    "category", "profession_code", "profession", "specialty_code", "specialty", "structure_id",
    "organisation", "service", "address", "postcode", "city", "department", "country",
    "dematerialisation", "search",
)  # fmt: skip
_TEXT_COLUMNS = ("organisation", "address", "search")


def upgrade() -> None:
    op.create_table(
        "annuaire_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=500), server_default="", nullable=False),
        sa.Column("sha256", sa.String(length=64), server_default="", nullable=False),
        sa.Column("row_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rejected_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_imports")),
    )
    current = op.create_table(
        "annuaire_current",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annuaire_current")),
    )
    op.bulk_insert(current, [{"id": 1, "generation": None}])
    op.create_table(
        "annuaire_entries",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Text() if name in _TEXT_COLUMNS else sa.String(250), nullable=False)
            for name in _ENTRY_COLUMNS
        ),
        sa.PrimaryKeyConstraint("generation", "seq", name=op.f("pk_annuaire_entries")),
    )
    op.create_table(
        "annuaire_tokens",
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column(
            "token",
            sa.String(length=40).with_variant(sa.String(length=40, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("annuaire_tokens")
    op.drop_table("annuaire_entries")
    op.drop_table("annuaire_current")
    op.drop_table("annuaire_imports")
