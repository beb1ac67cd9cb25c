"""Recipients' addresses out of the clear: keyed pseudonyms and sealed copies in the trace, the
pickups and finished queue rows; an index for the trace's retention

Revision ID: 0019
Revises: 0018

The conversion of rows written before this revision needs the data keys, hence the master key,
which migrations do not hold: ``services.trace.conceal_clear_addresses`` does it, run by
``caducee migrate`` right after the schema upgrade and by every node's maintenance worker.
This revision only adds columns and an index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("message_trace", sa.Column("recipient_key", sa.String(length=64)))
    op.add_column("message_trace", sa.Column("recipient_sealed", sa.LargeBinary()))
    op.create_index("ix_message_trace_ts", "message_trace", ["ts"])
    op.add_column("outbound_recipients", sa.Column("address_sealed", sa.LargeBinary()))
    op.add_column("pickups", sa.Column("trace_recipient_key", sa.String(length=64)))
    op.add_column("pickups", sa.Column("trace_recipient_sealed", sa.LargeBinary()))


def downgrade() -> None:
    with op.batch_alter_table("pickups") as batch:
        batch.drop_column("trace_recipient_sealed")
        batch.drop_column("trace_recipient_key")
    with op.batch_alter_table("outbound_recipients") as batch:
        batch.drop_column("address_sealed")
    op.drop_index("ix_message_trace_ts", table_name="message_trace")
    with op.batch_alter_table("message_trace") as batch:
        batch.drop_column("recipient_sealed")
        batch.drop_column("recipient_key")
