"""Télétransmission retention over IMAP (issue 15): a lot or a return is kept
``retention_days`` (90) from its internal date whatever the client asks — EXPUNGE, UID EXPUNGE,
MOVE to another mailbox, DELETE of its folder are refused with ``NO [CANNOT]`` and the reason,
CLOSE keeps it and warns — while moving it inside its mailbox stays allowed; once the period
is over, it may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from caducee.domain.model import MailboxType
from caducee.services import mailboxes
from caducee.services.messages import store_message
from tests.protocols.imap.conftest import LOGIN, Client, ImapServer, message, tagged

TLT = "tlt.dr@cabinet.test"
BOX = f"Partag&AOk-s/{TLT}"  # Partagés, in modified UTF-7 (RFC 3501 §5.1.3)


async def tlt_mailbox(server: ImapServer, *ages_in_days: int) -> int:
    """The TLT mailbox owned by LOGIN, its Inbox holding one message per age (days old)."""
    box = await mailboxes.add_mailbox(server.app, TLT, MailboxType.TLT, LOGIN)
    now = datetime.now(UTC)
    for n, age in enumerate(ages_in_days):
        await store_message(
            server.app, box.id, "INBOX", message(n), internal_date=now - timedelta(days=age)
        )
    return box.id


async def selected(server: ImapServer, folder: str = "INBOX") -> Client:
    client = await server.client()
    await client.ok(f'SELECT "{BOX}/{folder}"')
    return client


async def count(client: Client, folder: str) -> str:
    return (await client.ok(f'STATUS "{BOX}/{folder}" (MESSAGES)'))[0]


async def test_expunge_of_a_young_return_is_refused_with_the_reason(server: ImapServer) -> None:
    await tlt_mailbox(server, 3, 100)
    c = await selected(server)
    await c.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    refused = await c.command("EXPUNGE")
    # All or nothing: the old one stays too, and the reason names how many and until when.
    assert tagged(refused).startswith("NO [CANNOT] 1 message(s) de la boite " + TLT)
    assert "90 jours" in refused[-1] and "a partir du" in refused[-1]
    assert not any(line.endswith("EXPUNGE") for line in refused)
    assert tagged(await c.command("UID EXPUNGE 1")).startswith("NO [CANNOT]")
    # Only the one past its retention: it goes.
    assert (await c.ok("UID EXPUNGE 2"))[0] == "* 2 EXPUNGE"
    assert await count(c, "INBOX") == f'* STATUS "{BOX}/INBOX" (MESSAGES 1)'


async def test_moving_inside_the_mailbox_is_allowed_moving_out_is_not(server: ImapServer) -> None:
    await tlt_mailbox(server, 1, 2)
    c = await selected(server)
    lines = await c.ok(f'MOVE 1 "{BOX}/Trash"')
    assert "* 1 EXPUNGE" in lines  # inside its mailbox: no deletion
    refused = await c.command("MOVE 1 INBOX")  # to the personal mailbox: it would leave
    assert tagged(refused).startswith("NO [CANNOT] 1 message(s)")
    assert await count(c, "INBOX") == f'* STATUS "{BOX}/INBOX" (MESSAGES 1)'
    assert (await c.ok("STATUS INBOX (MESSAGES)"))[0] == '* STATUS "INBOX" (MESSAGES 0)'
    await c.ok("COPY 1 INBOX")  # a copy elsewhere takes nothing away
    # The folder holding a young lot cannot be deleted with it.
    await c.ok(f'CREATE "{BOX}/Lots"')
    await c.ok(f'MOVE 1 "{BOX}/Lots"')
    assert tagged(await c.command(f'DELETE "{BOX}/Lots"')).startswith("NO [CANNOT]")


async def test_close_keeps_what_it_must_and_says_so(server: ImapServer) -> None:
    await tlt_mailbox(server, 5, 91, 200)
    c = await selected(server)
    await c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    lines = await c.command("CLOSE")
    assert lines[0].startswith("* NO [CANNOT] 1 message(s) de la boite " + TLT)
    assert tagged(lines) == "OK CLOSE fait"
    assert await count(c, "INBOX") == f'* STATUS "{BOX}/INBOX" (MESSAGES 1)'


@pytest.mark.parametrize("days", [30])
async def test_the_retention_period_is_configurable(server: ImapServer, days: int) -> None:
    server.app.settings.tlt_retention_days = days
    await tlt_mailbox(server, 31)
    c = await selected(server)
    await c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert (await c.ok("EXPUNGE"))[0] == "* 1 EXPUNGE"


async def test_ordinary_mailboxes_are_not_held(server: ImapServer) -> None:
    await store_message(
        server.app,
        (await mailboxes.get_mailbox(server.app, LOGIN)).id,
        "INBOX",
        message(1),
    )
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert (await c.ok("EXPUNGE"))[0] == "* 1 EXPUNGE"
