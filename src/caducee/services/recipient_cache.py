"""The node's recent answers to « which mailbox is this address? » (SMTP RCPT, delivery).

Only found mailboxes are kept, for :data:`RecipientCache.TTL_SECONDS`: an address created a
moment ago is never refused, and what a cached answer may have missed (a mailbox disabled,
filled or deleted in the meantime) is checked again, under lock, when the message is committed.
"""

from __future__ import annotations

import time

from caducee.app import App
from caducee.domain.model import Mailbox
from caducee.store import directory_repo as repo


class RecipientCache:
    TTL_SECONDS = 2.0
    MAX_ENTRIES = 10_000

    def __init__(self, _app: App) -> None:
        self._entries: dict[str, tuple[float, Mailbox]] = {}

    def cached(self, address: str) -> Mailbox | None:
        """The mailbox of ``address`` if looked up less than :data:`TTL_SECONDS` ago."""
        entry = self._entries.get(address)
        if entry is not None and time.monotonic() - entry[0] <= self.TTL_SECONDS:
            return entry[1]
        return None

    async def mailbox(self, app: App, address: str) -> Mailbox | None:
        found = self.cached(address)
        if found is not None:
            return found
        now = time.monotonic()
        async with app.db.read() as conn:
            found = await repo.mailbox_by_address(conn, address)
        if found is not None:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[address] = (now, found)
        return found


def recipient_cache(app: App) -> RecipientCache:
    return app.component(RecipientCache, RecipientCache)
