"""MSSanté whitelist: trust_lists and trust_domains

Revision ID: 0010
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trust_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=500), server_default="", nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("domain_count", sa.Integer(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_lists")),
    )
    op.create_table(
        "trust_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("dn", sa.String(length=1000), nullable=False),
        sa.Column("dn_key", sa.String(length=1000), nullable=False),
        sa.Column("description", sa.String(length=500), server_default="", nullable=False),
        sa.Column("support_contact", sa.String(length=500), server_default="", nullable=False),
        sa.Column("updated", sa.String(length=50), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["trust_lists.id"], name=op.f("fk_trust_domains_list_id_trust_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_domains")),
    )
    op.create_index("ix_trust_domains_list_domain", "trust_domains", ["list_id", "domain"])


def downgrade() -> None:
    op.drop_index("ix_trust_domains_list_domain", table_name="trust_domains")
    op.drop_table("trust_domains")
    op.drop_table("trust_lists")
