"""App passwords of a mailbox (TLT, ORG, APP: a login of its own over POP3, IMAP and SMTP), who
created each app password, and the size POP3 announces for each message

- ``app_passwords.mailbox_id``: NULL for an account's own app password (today's rows); else the
  mailbox whose address is the login it opens (``account_id`` then names the mailbox's owner
  when the password was created, kept NOT NULL so old code paths and the foreign key hold);
- ``app_passwords.created_by``: the login of who created it (NULL for rows made before 0021);
- ``messages.pop3_size``: the octets POP3 RETR sends for the message (CRLF line ends, a final
  CRLF), RFC 1939 §5 "exact size". Set at delivery; NULL for rows stored before 0021, computed
  on their first POP3 listing (a migration holds no key and cannot decrypt them).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("app_passwords") as batch:
        batch.add_column(sa.Column("mailbox_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(320), nullable=True))
        batch.create_foreign_key(
            "fk_app_passwords_mailbox_id_mailboxes", "mailboxes", ["mailbox_id"], ["id"]
        )
        batch.create_index("ix_app_passwords_mailbox_id", ["mailbox_id"])
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("pop3_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("pop3_size")
    with op.batch_alter_table("app_passwords") as batch:
        batch.drop_index("ix_app_passwords_mailbox_id")
        batch.drop_constraint("fk_app_passwords_mailbox_id_mailboxes", type_="foreignkey")
        batch.drop_column("created_by")
        batch.drop_column("mailbox_id")
