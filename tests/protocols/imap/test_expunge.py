"""EXPUNGE / UID EXPUNGE / CLOSE, and two sessions on one folder seeing each other's changes at
the right moments (RFC 3501 §5.5, §7.4.1): EXISTS, FETCH FLAGS, EXPUNGE never during FETCH,
STORE or SEARCH by sequence number."""

from __future__ import annotations

import json

from caducee.services import audit
from caducee.services.audit import AuditRecord
from caducee.services.delivery import deliver_local
from caducee.services.messages import expunge_messages
from tests.protocols.imap.conftest import LOGIN, ImapServer, message, tagged


async def test_expunge_and_uid_expunge(server: ImapServer) -> None:
    for n in range(4):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert await c.ok("UID EXPUNGE 2:3") == ["* 3 EXPUNGE", "* 2 EXPUNGE", "a4 OK EXPUNGE fait"]
    assert (await c.ok("EXPUNGE"))[0] == "* 1 EXPUNGE"
    assert (await c.ok("FETCH 1 UID"))[0] == "* 1 FETCH (UID 4)"
    await c.ok("STORE 1 +FLAGS (\\Deleted)")
    await c.ok("CLOSE")
    assert (await c.ok("STATUS INBOX (MESSAGES)"))[0] == '* STATUS "INBOX" (MESSAGES 0)'
    assert tagged(await c.command("EXPUNGE")).startswith("BAD")  # nothing selected


async def test_two_sessions_see_each_other(server: ImapServer) -> None:
    for n in range(3):
        await deliver_local(server.app, message(n), [LOGIN])
    a = await server.client()
    b = await server.client()
    await a.ok("SELECT INBOX")
    await b.ok("SELECT INBOX")
    await a.ok("STORE 2 +FLAGS (\\Flagged)")
    assert await b.ok("NOOP") == ["* 2 FETCH (UID 2 FLAGS (\\Flagged))", "a3 OK NOOP fait"]
    await a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    await a.ok("EXPUNGE")
    await deliver_local(server.app, message(3), [LOGIN])
    # FETCH by number: the expunge is held back, the new message is announced.
    lines = await b.ok("FETCH 1:3 UID")
    assert "* 1 EXPUNGE" not in lines and "* 4 EXISTS" in lines
    # RFC 2180 §4.1.1: the message expunged elsewhere is left out, its number kept.
    assert lines[:2] == ["* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]
    lines = await b.ok("SEARCH ALL")
    assert lines[0] == "* SEARCH 2 3 4" and "* 1 EXPUNGE" not in lines
    lines = await b.ok("STORE 2 +FLAGS (\\Seen)")
    assert "* 1 EXPUNGE" not in lines
    # UID FETCH may carry it; NOOP does.
    lines = await b.ok("NOOP")
    assert lines[0] == "* 1 EXPUNGE"
    assert (await b.ok("FETCH 1:* UID"))[:3] == [
        "* 1 FETCH (UID 2)",
        "* 2 FETCH (UID 3)",
        "* 3 FETCH (UID 4)",
    ]
    # An expunge by POP3 (the same service) is seen too.
    lines = await a.ok("NOOP")
    assert "* 3 EXISTS" in lines and "* 2 RECENT" in lines  # the new one is b's \\Recent
    assert "* 1 FETCH (UID 2 FLAGS (\\Recent \\Seen \\Flagged))" in lines
    from caducee.services import mailstore

    of = await mailstore.open_folder(server.app, LOGIN, "INBOX", source="test")
    _, rows = await mailstore.index(server.app, of.folder.id)
    await expunge_messages(server.app, of.folder.id, [rows[0].id], actor=LOGIN, source="test")
    assert "* 1 EXPUNGE" in await a.ok("UID FETCH 1:* UID")


async def deletions(server: ImapServer) -> list[AuditRecord]:
    return [r async for r in audit.iter_records(server.app.db) if r.action.startswith("message.")]


async def test_expunge_and_close_are_in_the_audit_trail(server: ImapServer) -> None:
    # ANS CONF.17-18: who removed which messages of which mailbox, when — no content.
    for n in range(4):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    await c.ok("EXPUNGE")
    await c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    await c.ok("CLOSE")
    removed = [r for r in await deletions(server) if r.action == "message.delete"]
    assert [(r.actor, r.target, json.loads(r.details)["uids"]) for r in removed] == [
        (LOGIN, LOGIN, "1,2"),
        (LOGIN, LOGIN, "3"),
    ]
    assert all(r.source == "127.0.0.1" for r in removed)
    assert all("message 0" not in r.details and "ailleurs" not in r.details for r in removed)
    assert (await audit.verify(server.app.db)).ok
