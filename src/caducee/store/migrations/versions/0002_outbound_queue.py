"""outbound queue: queued messages and their recipients

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbound_messages",
        sa.Column("id", _id(), nullable=False),
        sa.Column("blob_id", sa.String(length=32), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mail_from", sa.String(length=320), server_default="", nullable=False),
        sa.Column("envid", sa.String(length=100), nullable=True),
        sa.Column("ret", sa.String(length=4), nullable=True),
        sa.Column("origin", sa.String(length=320), server_default="", nullable=False),
        sa.Column("origin_account_id", sa.Integer(), nullable=True),
        sa.Column("origin_mailbox_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
    )
    op.create_table(
        "outbound_recipients",
        sa.Column("id", _id(), nullable=False),
        sa.Column("message_id", _id(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_status", sa.String(length=12), nullable=True),
        sa.Column("last_reply", sa.String(length=500), nullable=True),
        sa.Column("remote_mta", sa.String(length=255), nullable=True),
        sa.Column("notify", sa.String(length=40), server_default="", nullable=False),
        sa.Column("orcpt", sa.String(length=500), nullable=True),
        sa.Column("delay_notified", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("report", sa.String(length=10), server_default="", nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["outbound_messages.id"],
            name=op.f("fk_outbound_recipients_message_id_outbound_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_recipients")),
    )
    with op.batch_alter_table("outbound_recipients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbound_recipients_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            "ix_outbound_recipients_due", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index("ix_outbound_recipients_report", ["report"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_outbound_recipients_report")
        batch_op.drop_index("ix_outbound_recipients_due")
        batch_op.drop_index(batch_op.f("ix_outbound_recipients_message_id"))
    op.drop_table("outbound_recipients")
    op.drop_table("outbound_messages")
