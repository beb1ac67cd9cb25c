"""patient registry (sealed), address verification (double opt-in), patient settings

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("email_key", sa.String(length=64), nullable=False),
        sa.Column("delivery_mode", sa.String(length=10), nullable=False),
        sa.Column("shared_address", sa.Boolean(), nullable=False),
        sa.Column("address_status", sa.String(length=12), nullable=False),
        sa.Column("verify_token_hash", sa.String(length=64), nullable=True),
        sa.Column("verify_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["practice_id"], ["practices.id"], name=op.f("fk_patients_practice_id_practices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("practice_id", "email_key", name="uq_patients_practice_email"),
        sa.UniqueConstraint("verify_token_hash", name=op.f("uq_patients_verify_token_hash")),
    )

    op.create_table(
        "patient_settings",
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("dlp_policy", sa.String(length=10), nullable=False),
        sa.Column("dlp_terms", sa.Text(), nullable=False),
        sa.Column("patient_mailbox_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["practice_id"],
            ["practices.id"],
            name=op.f("fk_patient_settings_practice_id_practices"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_patient_settings_patient_mailbox_id_mailboxes"),
        ),
        sa.PrimaryKeyConstraint("practice_id", name=op.f("pk_patient_settings")),
    )


def downgrade() -> None:
    op.drop_table("patient_settings")
    op.drop_table("patients")
