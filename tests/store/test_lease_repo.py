"""POP3 leases in the database (issue 17): taken atomically, taken over only once expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.store import lease_repo

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


async def test_a_lease_is_held_until_it_expires_or_is_released(app: App) -> None:
    async with app.db.write() as conn:
        assert await lease_repo.take_pop3(conn, 7, "a", NOW, NOW + MINUTE)
        # Another holder is refused while the lease lives; the holder may take it again.
        assert not await lease_repo.take_pop3(conn, 7, "b", NOW + MINUTE / 2, NOW + 2 * MINUTE)
        assert await lease_repo.take_pop3(conn, 7, "a", NOW, NOW + MINUTE)
        # Another maildrop is another lease.
        assert await lease_repo.take_pop3(conn, 8, "b", NOW, NOW + MINUTE)
        # Refreshed, it outlives its first expiry.
        assert await lease_repo.refresh_pop3(conn, 7, "a", NOW + 3 * MINUTE)
        assert not await lease_repo.take_pop3(conn, 7, "b", NOW + 2 * MINUTE, NOW + 4 * MINUTE)
        # Expired (a killed process stops refreshing): taken over, and the old holder knows.
        assert await lease_repo.take_pop3(conn, 7, "b", NOW + 3 * MINUTE, NOW + 4 * MINUTE)
        assert not await lease_repo.refresh_pop3(conn, 7, "a", NOW + 5 * MINUTE)
        # Released by its holder only.
        await lease_repo.release_pop3(conn, 7, "a")
        assert not await lease_repo.take_pop3(conn, 7, "c", NOW + 3 * MINUTE, NOW + 4 * MINUTE)
        await lease_repo.release_pop3(conn, 7, "b")
        assert await lease_repo.take_pop3(conn, 7, "c", NOW + 3 * MINUTE, NOW + 4 * MINUTE)
