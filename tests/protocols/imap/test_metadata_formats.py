"""Metadata stored before the split of migration 0039 (issue 17) keeps working: FETCH serves the
same ENVELOPE, BODYSTRUCTURE, BODY and sections from a message whose IMAP structure is still
inside its JSON document (version 3, and 2 without header fields), or nowhere (version 1:
computed from the raw message); SEARCH HEADER finds the same; the maintenance round's re-seal
(``mailstore.reseal``) splits them, changes nothing a client sees and leaves the audit trail
as it was."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from caducee.app import App
from caducee.domain.message_meta import META_VERSION
from caducee.domain.mime_structure import Structure, parse_structure
from caducee.domain.model import StoredMessage
from caducee.flows import maintenance
from caducee.services import audit, mailstore
from caducee.services.delivery import deliver_local
from caducee.store.keyring import mailbox_scope
from caducee.store.tables import audit_log, messages
from tests.protocols.imap.conftest import LOGIN, Client, ImapServer, tagged
from tests.protocols.imap.samples import NESTED, SECTIONS

#: What a full sync asks (the yardstick's), and BODY, which it does not.
SYNC = "FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY)"


def cleared_caches(app: App) -> None:
    mailstore.meta_cache(app).entries.clear()
    mailstore.structure_cache(app).entries.clear()
    app.component(mailstore.HeadsCache, mailstore.HeadsCache).entries.clear()


async def make_old(app: App, stored: list[StoredMessage], version: int) -> None:
    """Rewrite messages as stored before migration 0039: one JSON document holding the IMAP
    structure (version 3), also without header fields (2), or holding neither (1)."""
    async with app.db.write() as conn:
        for message in stored:
            scope = mailbox_scope(message.mailbox_id)
            row = (
                await conn.execute(
                    select(messages.c.meta_sealed, messages.c.imap_sealed).where(
                        messages.c.id == message.id
                    )
                )
            ).one()
            meta = json.loads(
                await app.keyring.open(conn, scope, message.blob_id, "meta", row.meta_sealed)
            )
            compact = await app.keyring.open(conn, scope, message.blob_id, "imap", row.imap_sealed)
            meta["v"] = version
            if version >= 2:
                meta["imap"] = Structure.from_compact(compact).to_meta()
            if version < 3:
                del meta["fields"]
            resealed = await app.keyring.seal(
                conn, scope, message.blob_id, "meta", json.dumps(meta).encode()
            )
            await conn.execute(
                update(messages)
                .where(messages.c.id == message.id)
                .values(meta_sealed=resealed, imap_sealed=None)
            )
    cleared_caches(app)


async def what_a_client_sees(c: Client) -> list[str]:
    """Every answer that depends on the stored metadata, for messages 1 and 2 (the same
    message delivered twice)."""
    seen = await c.ok(SYNC)
    for section in SECTIONS:
        seen += await c.ok(f"FETCH 1:2 BODY.PEEK[{section}]")
    for criteria in (
        "HEADER Message-ID cr1@cabinet",
        "HEADER Content-Type multipart/mixed",
        "HEADER X-Absent x",
        "SUBJECT compte",
        "FROM dr@cabinet.test",
        "SENTBEFORE 1-Jan-2030",
    ):
        seen += await c.ok(f"SEARCH {criteria}")
    return [line for line in seen if line.startswith("* ")]  # not the tagged OKs


async def stored_rows(app: App) -> list[tuple[int, bytes, bytes | None]]:
    async with app.db.read() as conn:
        rows = await conn.execute(
            select(messages.c.id, messages.c.meta_sealed, messages.c.imap_sealed).order_by(
                messages.c.id
            )
        )
        return [
            (r.id, bytes(r.meta_sealed), None if r.imap_sealed is None else bytes(r.imap_sealed))
            for r in rows
        ]


async def test_a_delivered_message_has_its_structure_apart(server: ImapServer) -> None:
    [stored] = await deliver_local(server.app, NESTED, [LOGIN])
    [(_, meta_sealed, imap_sealed)] = await stored_rows(server.app)
    assert imap_sealed is not None
    async with server.app.db.read() as conn:
        scope = mailbox_scope(stored.mailbox_id)
        meta = json.loads(
            await server.app.keyring.open(conn, scope, stored.blob_id, "meta", meta_sealed)
        )
        compact = await server.app.keyring.open(conn, scope, stored.blob_id, "imap", imap_sealed)
    assert meta["v"] == META_VERSION and "imap" not in meta
    assert ["message-id", "<cr1@cabinet.test>"] in meta["fields"]
    structure = Structure.from_compact(compact)
    assert structure.envelope.startswith(b'("Tue, 3 Dec 2024 10:00:00 +0100" "Compte rendu"')
    assert structure == parse_structure(NESTED)  # the entity tree too


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_old_metadata_is_served_as_new_then_resealed(
    server: ImapServer, version: int
) -> None:
    app = server.app
    stored = [m for _ in range(2) for m in await deliver_local(app, NESTED, [LOGIN])]
    c = await server.client()
    await c.ok("EXAMINE INBOX")
    new = await what_a_client_sees(c)
    await make_old(app, stored[1:], version)  # message 2 as stored before
    assert [imap for _, _, imap in await stored_rows(app)][1] is None
    assert await what_a_client_sees(c) == new
    async with app.db.read() as conn:
        audited = await conn.scalar(select(func.count()).select_from(audit_log))

    cleared_caches(app)
    assert await mailstore.reseal(app) == 1
    rows = await stored_rows(app)
    assert all(imap is not None for _, _, imap in rows)
    async with app.db.read() as conn:
        scope = mailbox_scope(stored[1].mailbox_id)
        meta = json.loads(
            await app.keyring.open(conn, scope, stored[1].blob_id, "meta", rows[1][1])
        )
        assert await conn.scalar(select(func.count()).select_from(audit_log)) == audited
    assert meta["v"] == META_VERSION and "imap" not in meta and "fields" in meta
    assert await what_a_client_sees(c) == new
    cleared_caches(app)
    assert await what_a_client_sees(c) == new
    assert await mailstore.reseal(app) == 0  # nothing left
    assert (await audit.verify(app.db)).ok


async def test_the_maintenance_round_reseals_every_old_message(server: ImapServer) -> None:
    app = server.app
    stored = [m for i in range(5) for m in await deliver_local(app, NESTED, [LOGIN])]
    c = await server.client()
    await c.ok("SELECT INBOX")
    before = (await c.ok(SYNC))[:-1]
    await make_old(app, stored[:2], 3)
    await make_old(app, stored[2:4], 1)
    app.component(mailstore._Reseal, lambda _app: mailstore._Reseal()).after = 0
    done = await maintenance.run_once(app, tuple(t for t in maintenance.TASKS if "split" in t.name))
    assert done == {"metadata-split": 4}
    assert all(imap is not None for _, _, imap in await stored_rows(app))
    cleared_caches(app)
    assert (await c.ok(SYNC))[:-1] == before


async def test_a_row_split_meanwhile_is_left_as_it_is(app: App, server: ImapServer) -> None:
    stored = await deliver_local(app, NESTED, [LOGIN])
    await make_old(app, stored, 3)
    [(message_id, old_meta, _)] = await stored_rows(app)
    async with app.db.read() as conn:
        [row] = await mailstore.repo.unsplit_metadata(conn, 0, 10)
    async with app.db.write() as conn:  # another node split it first
        await mailstore.repo.set_split_metadata(conn, [(message_id, b"first", b"first")])
        await mailstore.repo.set_split_metadata(conn, [(message_id, b"second", b"second")])
    assert await stored_rows(app) == [(message_id, b"first", b"first")]
    assert row.meta_sealed == old_meta


async def test_a_structure_is_bound_to_its_message(server: ImapServer) -> None:
    """The compact structure is sealed like the rest: moved to another message's row, it no
    longer opens (its associated data names its mailbox, its message and the field "imap")."""
    app = server.app
    await deliver_local(app, NESTED, [LOGIN])
    await deliver_local(app, b"Subject: autre\r\n\r\ncorps\r\n", [LOGIN])
    rows = await stored_rows(app)
    async with app.db.write() as conn:
        await conn.execute(
            update(messages).where(messages.c.id == rows[1][0]).values(imap_sealed=rows[0][2])
        )
    cleared_caches(app)
    c = await server.client()
    await c.ok("EXAMINE INBOX")
    assert (await c.ok("FETCH 1 ENVELOPE"))[0].startswith('* 1 FETCH (ENVELOPE ("Tue, 3 Dec')
    answer = await c.command("FETCH 2 ENVELOPE")
    assert not any("ENVELOPE" in line and "Compte rendu" in line for line in answer)
    assert not tagged(answer).startswith("OK")


async def test_a_large_folder_s_rows_are_kept_compactly(
    server: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder of ``COMPACT_ROWS`` messages or more is kept in typed arrays
    (``mailstore.FolderRows``): FETCH, SEARCH and STORE answer as with the rows kept as
    objects (here from one message on)."""
    app = server.app
    for n in range(3):
        raw = NESTED.replace(b"Compte rendu", f"Compte rendu {n}".encode())
        await deliver_local(app, raw, [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    script = (
        SYNC,
        "SEARCH SUBJECT rendu",
        "SEARCH SUBJECT 1",
        "SEARCH SENTBEFORE 1-Jan-2030 NOT SEEN",
        "STORE 2 +FLAGS (\\Seen)",
        SYNC,
        "SEARCH SEEN",
        "FETCH 1:3 (FLAGS RFC822.SIZE INTERNALDATE)",
    )
    expected = [await c.ok(line) for line in script]
    await c.ok("STORE 2 -FLAGS (\\Seen)")
    monkeypatch.setattr(mailstore, "COMPACT_ROWS", 1)
    app.component(mailstore.FolderRowsCache, mailstore.FolderRowsCache).entries.clear()
    cleared_caches(app)
    got = [await c.ok(line) for line in script]
    cached = app.component(mailstore.FolderRowsCache, mailstore.FolderRowsCache).entries
    assert any(isinstance(rows, mailstore.FolderRows) for _, rows in cached.values())

    def untagged(answers: list[list[str]]) -> list[list[str]]:
        return [[line for line in lines if line.startswith("* ")] for lines in answers]

    assert untagged(got) == untagged(expected)
