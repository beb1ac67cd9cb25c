"""The IMAP structure of a message sealed apart from the rest of its metadata (issue 17):
``messages.imap_sealed`` holds the rendered ENVELOPE, BODYSTRUCTURE and BODY and the packed
entity tree (``Structure.to_compact``), so that a full sync opens ~1 kB of bytes per message
instead of decoding a 2.2 kB JSON document. NULL for messages stored before: they are read from
``meta_sealed`` as before until the maintenance round re-seals them (``mailstore.reseal``).

Revision ID: 0039
Revises: 0038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None
#: A nullable column: code of the previous revision keeps working on this schema (it reads the
#: structure a new message lacks in ``meta_sealed`` from the raw message, as for version 1).
additive = True


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("imap_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("imap_sealed")
