"""LIST / LSUB / CREATE / DELETE / RENAME / SUBSCRIBE / STATUS / NAMESPACE / SELECT / EXAMINE."""

from __future__ import annotations

from caducee.services import mailboxes
from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, OTHER, ImapServer, message, tagged


async def test_list_special_use_children_and_delimiter(server: ImapServer) -> None:
    c = await server.client()
    assert (await c.ok('LIST "" ""'))[0] == '* LIST (\\Noselect) "/" ""'
    lines = await c.ok('LIST "" *')
    assert lines[0] == '* LIST (\\HasNoChildren) "/" "INBOX"'
    assert '* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in lines
    assert '* LIST (\\HasNoChildren \\Trash) "/" "Trash"' in lines
    await c.ok("CREATE Patients/2024")
    lines = await c.ok('LIST "" Patients/%')
    assert lines[:-1] == ['* LIST (\\HasNoChildren) "/" "Patients/2024"']
    lines = await c.ok('LIST "" %')
    assert '* LIST (\\HasChildren) "/" "Patients"' in lines
    assert not any("2024" in line for line in lines)
    lines = await c.ok('LIST "Patients/" *')
    assert lines[:-1] == ['* LIST (\\HasNoChildren) "/" "Patients/2024"']
    lines = await c.ok('LIST (SPECIAL-USE) "" *')
    assert {line.split('"/" ')[1] for line in lines[:-1]} == {
        '"Archive"',
        '"Drafts"',
        '"Junk"',
        '"Sent"',
        '"Trash"',
    }
    lines = await c.ok('LIST "" inbox')
    assert lines[0] == '* LIST (\\HasNoChildren) "/" "INBOX"'


async def test_create_delete_rename_rules(server: ImapServer) -> None:
    c = await server.client()
    await c.ok("CREATE Dossiers/Ordonnances/")
    assert tagged(await c.command("CREATE Dossiers/Ordonnances")).startswith("NO [ALREADYEXISTS]")
    assert tagged(await c.command("DELETE Dossiers")).startswith("NO [HASCHILDREN]")
    assert tagged(await c.command("DELETE INBOX")).startswith("NO")
    assert tagged(await c.command("DELETE Inconnu")).startswith("NO [NONEXISTENT]")
    await c.ok("RENAME Dossiers Archives2")
    lines = await c.ok('LIST "" Archives2*')
    assert [line.split('"/" ')[1] for line in lines[:-1]] == [
        '"Archives2"',
        '"Archives2/Ordonnances"',
    ]
    assert tagged(await c.command("RENAME Archives2 Archives2/Sous")).startswith("NO")
    assert tagged(await c.command("RENAME Archives2 Sent")).startswith("NO [ALREADYEXISTS]")
    await c.ok("DELETE Archives2/Ordonnances")
    await c.ok("DELETE Archives2")
    for bad_name in ('"a//b"', '"../x"', '"a/../b"', '"x%"', '"y*"', '"/abs"', '"Partag&AOk-s/x"'):
        assert tagged(await c.command(f"CREATE {bad_name}")).startswith(("NO", "BAD")), bad_name


async def test_rename_inbox_moves_its_messages(server: ImapServer) -> None:
    for n in range(2):
        await deliver_local(server.app, message(n), [LOGIN])
    c = await server.client()
    await c.ok("RENAME INBOX Ancien")
    status = await c.ok("STATUS INBOX (MESSAGES)")
    assert status[0] == '* STATUS "INBOX" (MESSAGES 0)'
    status = await c.ok("STATUS Ancien (MESSAGES)")
    assert status[0] == '* STATUS "Ancien" (MESSAGES 2)'
    await c.ok("SELECT Ancien")
    assert len(await c.ok("FETCH 1:* UID")) == 3


async def test_modified_utf7_and_utf8_names(server: ImapServer) -> None:
    c = await server.client()
    await c.ok("CREATE R&AOk-sultats")  # "Résultats"
    lines = await c.ok('LIST "" R*')
    assert lines[0] == '* LIST (\\HasNoChildren) "/" "R&AOk-sultats"'
    assert tagged(await c.command("CREATE &AGEAYgBj-")).startswith("NO")  # ASCII in UTF-7
    assert tagged(await c.command("CREATE R&AOk")).startswith("NO")
    await c.ok("ENABLE UTF8=ACCEPT")
    lines = await c.ok('LIST "" R*')
    assert lines[0] == '* LIST (\\HasNoChildren) "/" "Résultats"'
    await c.ok('CREATE "Comptes rendus é"')
    await c.ok('SELECT "Résultats"')


async def test_subscribe_lsub_and_list_extended(server: ImapServer) -> None:
    c = await server.client()
    await c.ok("CREATE Notes/Perso")
    await c.ok("SUBSCRIBE Notes/Perso")  # CREATE does not subscribe (RFC 3501 §6.3.3)
    await c.ok("UNSUBSCRIBE Junk")
    lines = await c.ok('LSUB "" *')
    names = [line.split('"/" ')[1] for line in lines[:-1]]
    assert '"Junk"' not in names and '"Notes/Perso"' in names and '"Notes"' not in names
    lines = await c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" %')
    assert any(
        line.endswith('"/" "Notes" ("CHILDINFO" ("SUBSCRIBED"))') and "\\Subscribed" not in line
        for line in lines
    )
    lines = await c.ok('LIST "" "Notes*" RETURN (SUBSCRIBED CHILDREN)')
    assert lines[0] == '* LIST (\\HasChildren) "/" "Notes"'
    assert lines[1] == '* LIST (\\HasNoChildren \\Subscribed) "/" "Notes/Perso"'
    lines = await c.ok('LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UIDNEXT))')
    assert lines[1] == '* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)'
    assert tagged(await c.command('LIST (BOGUS) "" *')).startswith("BAD")
    assert tagged(await c.command('LIST (RECURSIVEMATCH) "" *')).startswith("BAD")


async def test_status_select_examine(server: ImapServer) -> None:
    await deliver_local(server.app, message(1), [LOGIN])
    await deliver_local(server.app, message(2), [LOGIN])
    c = await server.client()
    lines = await c.ok("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)")
    size = len(message(1)) + len(message(2))
    assert "MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY" in lines[0]
    assert f"UNSEEN 2 DELETED 0 SIZE {size})" in lines[0]
    assert tagged(await c.command("STATUS INBOX (BOGUS)")).startswith("BAD")
    lines = await c.ok("EXAMINE INBOX")
    assert "* 2 EXISTS" in lines and tagged(lines).startswith("OK [READ-ONLY]")
    assert tagged(await c.command("STORE 1 +FLAGS (\\Seen)")).startswith("NO")
    await c.ok("FETCH 1 BODY[]")  # no \Seen on a read-only selection
    lines = await c.ok("SELECT INBOX")
    assert lines[0] == "* OK [CLOSED] dossier precedent ferme"
    assert "* OK [UNSEEN 1] premier message non lu" in lines
    assert tagged(lines).startswith("OK [READ-WRITE]")
    assert tagged(await c.command("SELECT Inconnu")).startswith("NO [NONEXISTENT]")
    assert tagged(await c.command("FETCH 1 FLAGS")).startswith("BAD")  # deselected
    lines = await c.ok("NAMESPACE")
    assert lines[0] == '* NAMESPACE (("" "/")) NIL (("Partag&AOk-s/" "/"))'


async def test_shared_namespace_lists_delegations(server: ImapServer) -> None:
    await mailboxes.delegate(server.app, OTHER, LOGIN, can_send=False)
    c = await server.client()
    lines = await c.ok('LIST "" *')
    assert '* LIST (\\Noselect \\HasChildren) "/" "Partag&AOk-s"' in lines
    assert f'* LIST (\\HasNoChildren) "/" "Partag&AOk-s/{OTHER}/INBOX"' in lines
    lines = await c.ok(f'SELECT "Partag&AOk-s/{OTHER}/INBOX"')
    assert tagged(lines).startswith("OK [READ-ONLY]")  # read delegation
    lines = await c.ok("GETQUOTAROOT INBOX")
    assert lines[1].startswith('* QUOTA "" (STORAGE 0 ')


async def test_subscriptions_outlive_folders_and_stay_per_user(server: ImapServer) -> None:
    c = await server.client()
    await c.ok("CREATE Temp")
    await c.ok("SUBSCRIBE Temp")
    await c.ok("DELETE Temp")
    lines = await c.ok('LIST (SUBSCRIBED) "" Temp')
    assert lines[0] == '* LIST (\\NonExistent \\Subscribed) "/" "Temp"'  # RFC 3501 §6.3.6
    assert len(await c.ok('LIST "" Temp')) == 1  # not a folder
    await c.ok("CREATE Temp")
    lines = await c.ok('LIST "" Temp RETURN (SUBSCRIBED)')
    assert lines[0] == '* LIST (\\HasNoChildren \\Subscribed) "/" "Temp"'
    # A delegate's subscription to a shared folder never changes the owner's.
    await mailboxes.delegate(server.app, OTHER, LOGIN, can_send=False)
    await c.ok('UNSUBSCRIBE "Partag&AOk-s/autre@cabinet.test/INBOX"')
    await c.ok('SUBSCRIBE "Partag&AOk-s/autre@cabinet.test/Sent"')
    owner = await server.client(OTHER)
    lines = await owner.ok('LSUB "" *')
    assert '* LSUB () "/" "INBOX"' in lines and '* LSUB () "/" "Sent"' in lines
    lines = await c.ok('LSUB "" "Partag&AOk-s/*"')
    assert lines[:-1] == ['* LSUB () "/" "Partag&AOk-s/autre@cabinet.test/Sent"']


async def test_select_again_sees_what_others_changed_and_sessions_keep_their_own_map(
    server: ImapServer,
) -> None:
    """The node keeps a folder's sequence map for the next SELECT while the folder is
    unchanged (issue 17): a change by another session is seen by the next SELECT, and what
    one session learns never shows through another's map."""
    for n in range(1, 5):
        await deliver_local(server.app, message(n), [LOGIN])
    a, b = await server.client(), await server.client()
    await a.ok("SELECT INBOX")
    lines = await b.ok("SELECT INBOX")
    assert "* 4 EXISTS" in lines and "* OK [UNSEEN 1] premier message non lu" in lines
    await b.ok("STORE 1:2 +FLAGS (\\Seen $Urgent)")
    await b.ok("STORE 4 +FLAGS (\\Deleted)")
    await b.ok("EXPUNGE")
    lines = await a.ok("SELECT INBOX")
    assert "* 3 EXISTS" in lines
    assert "* OK [UNSEEN 3] premier message non lu" in lines
    assert any(line.startswith("* FLAGS (") and "$Urgent" in line for line in lines)
    lines = await a.ok("FETCH 1:* (UID FLAGS)")
    assert lines[:3] == [
        "* 1 FETCH (UID 1 FLAGS (\\Seen $Urgent))",
        "* 2 FETCH (UID 2 FLAGS (\\Seen $Urgent))",
        "* 3 FETCH (UID 3 FLAGS ())",
    ]
    await deliver_local(server.app, message(5), [LOGIN])
    lines = await a.ok("NOOP")  # a learns of the new message; b's map stays as b knows it
    assert "* 4 EXISTS" in lines
    lines = await b.ok("FETCH 3 (UID)")
    assert lines[0] == "* 3 FETCH (UID 3)" and "* 4 EXISTS" in lines
    lines = await a.ok("UID FETCH 5 (UID)")
    assert lines[0] == "* 4 FETCH (UID 5)"
