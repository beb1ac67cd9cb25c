"""\\Recent (RFC 3501 §2.3.2) claimed by sessions of one or several nodes (both backends)."""

from __future__ import annotations

import asyncio

from caducee.app import App
from caducee.services import mailstore
from tests.services.helpers import inbox_with

LOGIN = "dr@cabinet.test"


async def test_recent_claimed_once_by_sessions_claiming_at_once(app: App) -> None:
    """RFC 3501 §2.3.2: a new message is \\Recent for one session only, even when several
    sessions (of several nodes) claim a folder nobody claimed yet at the same moment."""
    inbox = await inbox_with(app, LOGIN, 3)
    state = await mailstore.folder_state(app, inbox.id)
    firsts = await asyncio.gather(
        *(mailstore.claim_recent(app, inbox.id, state.uidnext, claim=True) for _ in range(6))
    )
    # one session got them all (from UID 1), the others none (from UIDNEXT)
    assert sorted(firsts) == [1] + [state.uidnext] * 5
