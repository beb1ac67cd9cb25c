"""Télétransmission: lots (FSE) sent from TLT mailboxes, the returns (ARL, NOEMIE) received, and
the insurer domains each practice adds to the default ones

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tlt_lots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("practice_id", sa.Integer(), sa.ForeignKey("practices.id"), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), sa.ForeignKey("mailboxes.id"), nullable=False),
        sa.Column("sender_number", sa.String(14), nullable=False),
        sa.Column("compostage", sa.String(19), nullable=False),
        sa.Column("sequence", sa.String(6), nullable=True),
        sa.Column("invoice_count", sa.Integer(), nullable=True),
        sa.Column("fund", sa.String(254), nullable=False),
        sa.Column("test_mode", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False, server_default=""),
        sa.Column("stored_message_id", sa.Integer(), nullable=True),
        sa.Column("queue_id", sa.Integer(), nullable=True, index=True),
        _ts("sent_at"),
        sa.Column("delivery", sa.String(10), nullable=False, server_default="queued"),
        sa.Column("delivery_detail", sa.String(300), nullable=False, server_default=""),
        _ts("delivery_at", nullable=True),
        sa.Column("arl", sa.String(16), nullable=True),
        _ts("arl_at", nullable=True),
        sa.Column("resent_by", sa.Integer(), nullable=True),
        sa.Column("resend_of", sa.Integer(), nullable=True),
        _ts("notified_at", nullable=True),
        _ts("archived_at", nullable=True),
        sa.Index("ix_tlt_lots_mailbox_sent", "mailbox_id", "sent_at"),
        sa.Index("ix_tlt_lots_compostage", "compostage"),
    )
    op.create_table(
        "tlt_returns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("practice_id", sa.Integer(), sa.ForeignKey("practices.id"), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), sa.ForeignKey("mailboxes.id"), nullable=False),
        sa.Column("lot_id", sa.Integer(), sa.ForeignKey("tlt_lots.id"), nullable=True, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.String(200), nullable=False, server_default=""),
        sa.Column("compostage", sa.String(19), nullable=True),
        sa.Column("sender_number", sa.String(14), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("stored_message_id", sa.Integer(), nullable=True),
        _ts("received_at"),
        sa.Index("ix_tlt_returns_mailbox_received", "mailbox_id", "received_at"),
    )
    op.create_table(
        "tlt_insurer_domains",
        sa.Column("practice_id", sa.Integer(), sa.ForeignKey("practices.id"), primary_key=True),
        sa.Column("pattern", sa.String(253), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("tlt_insurer_domains")
    op.drop_table("tlt_returns")
    op.drop_table("tlt_lots")
