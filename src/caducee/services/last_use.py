"""The last use of each account and mailbox (issue 19), on every door: web (login and each
session request), IMAP, POP3, SMTP AUTH, REST API — for the admin console's lists and the CNIL
inactivity rule.

``accounts.last_used_at`` and ``mailboxes.last_used_at`` are written at most once per
:data:`INTERVAL` per account or mailbox: this node keeps a note of its last write of each, so a
busy mailbox costs one UPDATE an hour (each node of a cluster writes on its own; the value is
exact to within the interval). The note is in memory only: a restart writes once more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.store import directory_repo
from caducee.store.connection import AsyncConnection

INTERVAL = timedelta(hours=1)
#: Past this many notes the node forgets them all (at worst one more UPDATE each).
MAX_NOTES = 100_000


class LastUse:
    """This node's note of when it last wrote each account's and mailbox's ``last_used_at``."""

    def __init__(self, _app: App) -> None:
        self._written: dict[tuple[str, int], datetime] = {}

    def due(self, kind: str, item_id: int, now: datetime) -> bool:
        written = self._written.get((kind, item_id))
        return written is None or now - written >= INTERVAL

    def mark(self, kind: str, item_id: int, now: datetime) -> None:
        if len(self._written) >= MAX_NOTES:
            self._written.clear()
        self._written[(kind, item_id)] = now


def last_use(app: App) -> LastUse:
    return app.component(LastUse, LastUse)


async def note(
    app: App,
    *,
    account_id: int | None = None,
    mailbox_id: int | None = None,
    conn: AsyncConnection | None = None,
    now: datetime | None = None,
) -> None:
    """Record a use of the account and/or mailbox, if not written in the last hour; in the
    caller's write transaction ``conn`` if given (else its own, only when a write is due)."""
    now = now or datetime.now(UTC)
    notes = last_use(app)
    due = [
        (kind, item_id)
        for kind, item_id in (("account", account_id), ("mailbox", mailbox_id))
        if item_id is not None and notes.due(kind, item_id, now)
    ]
    if not due:
        return
    if conn is not None:
        await _write(conn, due, now)
    else:
        async with app.db.write() as own:
            await _write(own, due, now)
    for kind, item_id in due:
        notes.mark(kind, item_id, now)


async def _write(conn: AsyncConnection, due: list[tuple[str, int]], now: datetime) -> None:
    for kind, item_id in due:
        if kind == "account":
            await directory_repo.update_account(conn, item_id, last_used_at=now)
        else:
            await directory_repo.update_mailbox(conn, item_id, last_used_at=now)
