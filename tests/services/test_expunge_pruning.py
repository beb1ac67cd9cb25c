"""Pruning the expunged-UID records kept for QRESYNC (RFC 7162): recent resyncs stay exact,
older ones get every UID that no longer exists — conservative, never a miss (both backends)."""

from __future__ import annotations

from caducee.app import App
from caducee.flows import maintenance
from caducee.services import mailstore
from caducee.services.messages import expunge_messages
from caducee.store import mailstore_repo
from tests.services.helpers import inbox_with

LOGIN = "dr@cabinet.test"


async def test_pruned_history_answers_conservatively(app: App) -> None:
    inbox = await inbox_with(app, LOGIN, 30)
    rows = sorted((await mailstore.fetch_rows(app, inbox.id, None)).values(), key=lambda r: r.uid)
    before = (await mailstore.folder_state(app, inbox.id)).highestmodseq
    modseqs = []
    for row in rows[:25]:  # one expunge (one MODSEQ) per message
        await expunge_messages(app, inbox.id, [row.id], actor=LOGIN, source="test")
        modseqs.append((await mailstore.folder_state(app, inbox.id)).highestmodseq)
    gone = [r.uid for r in rows[:25]]
    assert (await mailstore.changes(app, inbox.id, modseqs[21])).expunged == gone[22:]

    async with app.db.write() as conn:
        dropped = await mailstore_repo.prune_expunged(conn, keep=2)
    assert dropped == 23
    # Newer than the horizon: exact. Older: every UID that is gone, none that exists.
    assert (await mailstore.changes(app, inbox.id, modseqs[23])).expunged == gone[24:]
    assert (await mailstore.changes(app, inbox.id, modseqs[21])).expunged == gone
    assert (await mailstore.changes(app, inbox.id, before)).expunged == gone
    # The maintenance task leaves small folders alone.
    done = await maintenance.run_once(app)
    assert done["imap-expunged"] == 0
