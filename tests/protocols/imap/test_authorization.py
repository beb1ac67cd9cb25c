"""Nobody selects, fetches, searches, appends or copies into a mailbox without a right, whatever
the command or name trick; read-only delegations stay read-only; refusals are audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from caducee.services import mailboxes
from caducee.services.delivery import deliver_local
from caducee.store.tables import audit_log
from tests.protocols.imap.conftest import LOGIN, OTHER, ImapServer, message, tagged

SHARED = "Partag&AOk-s"
TRICKS = [
    f'"{SHARED}/{OTHER}/INBOX"',
    f'"{SHARED}/{OTHER.upper()}/inbox"',
    f'"{SHARED}/{OTHER}/../{LOGIN}/INBOX"',
    f'"{SHARED}/%/INBOX"',
    f'"{SHARED}/*/INBOX"',
    f'"{SHARED}//INBOX"',
    f'"partag&AOk-s/{OTHER}/INBOX"',
    f'"{OTHER}/INBOX"',
    f'"../{OTHER}/INBOX"',
    f'"{SHARED}&AC8-{OTHER}/INBOX"',  # "/" hidden in modified UTF-7
    f'"Partag&AOkALw-{OTHER}/INBOX"',
    f'"Partag&AOk-s/{OTHER}&AC8-INBOX"',
    f'"Partagés/{OTHER}/INBOX"',  # 8-bit without UTF8=ACCEPT
    f"{{{len(SHARED) + len(OTHER) + 7}+}}\r\n{SHARED}/{OTHER}/INBOX",
]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_no_trick_reaches_another_mailbox(server: ImapServer) -> None:
    await deliver_local(server.app, message(1, subject="secret de l'autre"), [OTHER])
    for name in TRICKS:
        c = await server.client()  # a fresh session: BAD answers count towards a hang-up
        for command in (
            f"SELECT {name}",
            f"EXAMINE {name}",
            f"STATUS {name} (MESSAGES)",
            f"APPEND {name} {{3+}}\r\nabc",
            f"GETQUOTAROOT {name}",
            f"DELETE {name}",
            f"RENAME {name} Vol",
        ):
            lines = await c.command(command)
            assert tagged(lines).startswith(("NO", "BAD")), (command, lines)
            assert not any("secret" in line for line in lines)
    c = await server.client()
    for name in TRICKS[:7]:  # names in the shared namespace: never created
        assert tagged(await c.command(f"CREATE {name}")).startswith(("NO", "BAD")), name
    lines = await c.ok('LIST "" *')
    assert not any(OTHER in line for line in lines)
    # Subscribing to a name is allowed (RFC 3501 §6.3.6) and tells or grants nothing.
    await c.ok(f"SUBSCRIBE {TRICKS[0]}")
    lines = await c.ok('LIST (SUBSCRIBED) "" "Partag&AOk-s/*"')
    assert lines[0] == f'* LIST (\\NonExistent \\Subscribed) "/" {TRICKS[0]}'
    assert tagged(await c.command(f"SELECT {TRICKS[0]}")).startswith("NO [NONEXISTENT]")
    await deliver_local(server.app, message(2), [LOGIN])
    for name in TRICKS:
        c = await server.client()
        await c.ok("SELECT INBOX")
        for command in (f"COPY 1 {name}", f"MOVE 1 {name}"):
            assert tagged(await c.command(command)).startswith(("NO", "BAD")), command
    assert (await mailboxes.get_mailbox(server.app, OTHER)).used_bytes == len(
        message(1, subject="secret de l'autre")
    )
    async with server.app.db.read() as conn:
        denied = (
            await conn.execute(
                select(audit_log.c.target).where(
                    audit_log.c.action == "mailbox.access", audit_log.c.result == "denied"
                )
            )
        ).all()
    assert any(row.target == OTHER for row in denied)


async def test_read_delegation_is_read_only(server: ImapServer) -> None:
    await deliver_local(server.app, message(1, subject="partage"), [OTHER])
    await mailboxes.delegate(server.app, OTHER, LOGIN, can_send=False)
    c = await server.client()
    name = f'"{SHARED}/{OTHER}/INBOX"'
    lines = await c.ok(f"SELECT {name}")
    assert tagged(lines).startswith("OK [READ-ONLY]")
    lines = await c.ok("FETCH 1 (BODY[HEADER.FIELDS (SUBJECT)])")
    assert "partage" in lines[0] and "\\Seen" not in lines[0]
    assert (await c.ok("SEARCH SUBJECT partage"))[0] == "* SEARCH 1"
    assert tagged(await c.command("STORE 1 +FLAGS (\\Seen)")).startswith("NO")
    assert tagged(await c.command("EXPUNGE")).startswith("NO")
    assert tagged(await c.command("MOVE 1 INBOX")).startswith("NO")
    await c.ok("COPY 1 INBOX")  # copying out to one's own mailbox is reading
    assert tagged(await c.command(f"APPEND {name} {{3+}}\r\nabc")).startswith("NO [NOPERM]")
    assert tagged(await c.command(f'CREATE "{SHARED}/{OTHER}/Sous"')).startswith("NO")
    await mailboxes.revoke_delegation(server.app, OTHER, LOGIN)
    assert tagged(await c.command(f"SELECT {name}")).startswith("NO [NONEXISTENT]")
    # The owner's session with a delegate's name: the same answer as for a stranger.
    d = await server.client(OTHER)
    assert tagged(await d.command(f'SELECT "{SHARED}/{LOGIN}/INBOX"')).startswith("NO")
