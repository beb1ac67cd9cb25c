"""The practice's explicit, audited leave for its patient-facing mailbox to send ordinary mail
outside the trust space (off: it writes outside only to verified patients, through the patient
channel)

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patient_settings") as batch:
        batch.add_column(
            sa.Column("patient_mailbox_open", sa.Boolean(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("patient_settings") as batch:
        batch.drop_column("patient_mailbox_open")
