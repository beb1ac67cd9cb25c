"""secure pickup portal: pickups, one-time codes, events, portal sessions

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "pickups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("practice_id", sa.Integer(), nullable=False),
        sa.Column("sender_mailbox_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("contact_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("blob_id", sa.String(length=32), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("trace_key", sa.String(length=64), nullable=True),
        sa.Column("passphrase_hash", sa.String(length=200), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        _fk("pickups", "practice_id", "practices"),
        _fk("pickups", "sender_mailbox_id", "mailboxes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pickups")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pickups_token_hash")),
        sa.UniqueConstraint("record_id", name=op.f("uq_pickups_record_id")),
    )
    op.create_index(op.f("ix_pickups_sender_mailbox_id"), "pickups", ["sender_mailbox_id"])
    op.create_index("ix_pickups_expires_at", "pickups", ["expires_at"])
    op.create_table(
        "pickup_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pickup_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded", sa.Boolean(), server_default="0", nullable=False),
        _fk("pickup_codes", "pickup_id", "pickups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pickup_codes")),
    )
    op.create_index(op.f("ix_pickup_codes_pickup_id"), "pickup_codes", ["pickup_id"])
    op.create_table(
        "pickup_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pickup_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.String(length=200), server_default="", nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        _fk("pickup_events", "pickup_id", "pickups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pickup_events")),
    )
    op.create_index(op.f("ix_pickup_events_pickup_id"), "pickup_events", ["pickup_id"])
    op.create_table(
        "pickup_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pickup_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _fk("pickup_sessions", "pickup_id", "pickups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pickup_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_pickup_sessions_token_hash")),
    )
    op.create_index(op.f("ix_pickup_sessions_pickup_id"), "pickup_sessions", ["pickup_id"])


def downgrade() -> None:
    for table in ("pickup_sessions", "pickup_events", "pickup_codes"):
        op.drop_index(op.f(f"ix_{table}_pickup_id"), table_name=table)
        op.drop_table(table)
    op.drop_index("ix_pickups_expires_at", table_name="pickups")
    op.drop_index(op.f("ix_pickups_sender_mailbox_id"), table_name="pickups")
    op.drop_table("pickups")
