"""SEARCH / UID SEARCH: every RFC 3501 key family, ESEARCH (RFC 4731), CHARSET."""

from __future__ import annotations

import pytest

from caducee.services import bounded_cache, mailstore
from caducee.services.delivery import deliver_local
from tests.protocols.imap.conftest import LOGIN, ImapServer, tagged
from tests.protocols.imap.samples import NESTED


def mail(subject: str, sender: str, body: str, date: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: {LOGIN}\r\nCc: copie@ailleurs.test\r\n"
        f"Subject: {subject}\r\nDate: {date}\r\n{extra}\r\n{body}\r\n"
    ).encode()


async def test_search_keys(server: ImapServer) -> None:
    await deliver_local(
        server.app,
        mail(
            "Resultats analyse", "Labo <labo@ailleurs.test>", "glycemie", "1 Feb 2024 10:00 +0000"
        ),
        [LOGIN],
    )
    await deliver_local(
        server.app,
        mail(
            "=?utf-8?q?Ordonnance_r=C3=A9nov=C3=A9e?=",
            "Dr X <x@ailleurs.test>",
            "renouvellement",
            "5 Mar 2024 10:00 +0000",
            "Bcc: cache@ailleurs.test\r\nX-Priorite: haute\r\n",
        ),
        [LOGIN],
    )
    await deliver_local(server.app, NESTED, [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("STORE 1 +FLAGS (\\Seen \\Flagged $Suivi)")
    await c.ok("STORE 3 +FLAGS (\\Deleted)")

    async def search(criteria: str) -> str:
        return (await c.ok(f"SEARCH {criteria}"))[0]

    assert await search("ALL") == "* SEARCH 1 2 3"
    assert await search("SEEN") == "* SEARCH 1"
    assert await search("UNSEEN UNDELETED") == "* SEARCH 2"
    assert await search("FLAGGED KEYWORD $suivi") == "* SEARCH 1"
    assert await search("UNKEYWORD $Suivi") == "* SEARCH 2 3"
    assert await search("DELETED") == "* SEARCH 3"
    assert await search("SUBJECT analyse") == "* SEARCH 1"
    assert await search("CHARSET UTF-8 SUBJECT {9+}\r\nrénovée") == "* SEARCH 2"
    assert await search('FROM "labo@"') == "* SEARCH 1"
    assert await search("TO dr@cabinet.test") == "* SEARCH 1 2"
    assert await search("CC copie") == "* SEARCH 1 2"
    assert await search("BCC cache") == "* SEARCH 2"
    assert await search('HEADER X-Priorite "HAUTE"') == "* SEARCH 2"
    assert await search('HEADER X-Priorite ""') == "* SEARCH 2"
    assert await search("BODY glycemie") == "* SEARCH 1 3"
    assert await search("CHARSET UTF-8 BODY {9+}\r\nrésultat") == "* SEARCH 3"
    assert await search("TEXT renouvellement") == "* SEARCH 2"
    assert await search("TEXT x-priorite") == "* SEARCH"  # header names are not text
    assert await search("SENTBEFORE 1-Mar-2024") == "* SEARCH 1"
    assert await search("SENTON 5-Mar-2024") == "* SEARCH 2"
    assert await search("SENTSINCE 2-Dec-2024") == "* SEARCH 3"
    assert await search("SINCE 1-Jan-2020 BEFORE 1-Jan-2100") == "* SEARCH 1 2 3"
    assert await search("ON 1-Jan-2020") == "* SEARCH"
    assert await search(f"LARGER {len(NESTED) - 1}") == "* SEARCH 3"
    assert await search("SMALLER 300") == "* SEARCH 1 2"
    assert await search("OR SEEN DELETED") == "* SEARCH 1 3"
    assert await search("NOT (SEEN OR DELETED FLAGGED)") == "* SEARCH 2 3"
    assert await search("2:* NOT 3") == "* SEARCH 2"
    assert await search("UID 1,3") == "* SEARCH 1 3"
    assert await search("RECENT") == "* SEARCH 1 2 3"  # first session to see them
    assert await search("NEW") == "* SEARCH 2 3"
    assert await search("OLD") == "* SEARCH"
    assert (await c.ok("UID SEARCH SEEN"))[0] == "* SEARCH 1"
    assert tagged(await c.command("SEARCH CHARSET KOI8-R ALL")) == (
        "NO [BADCHARSET (UTF-8 US-ASCII)] jeu de caracteres non pris en charge"
    )
    assert tagged(await c.command("SEARCH BOGUS")).startswith("BAD")
    assert tagged(await c.command("SEARCH SENTON 31-Feb-2024")).startswith("BAD")
    assert tagged(await c.command("SEARCH " + "(" * 60 + "ALL" + ")" * 60)).startswith("BAD")


async def test_esearch(server: ImapServer) -> None:
    for n in range(5):
        await deliver_local(server.app, f"Subject: m{n}\r\n\r\nx\r\n".encode(), [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("STORE 2,4 +FLAGS (\\Seen)")
    lines = await c.ok("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    tag = lines[-1].split()[0]
    assert lines[0] == f'* ESEARCH (TAG "{tag}") MIN 1 MAX 5 ALL 1,3,5 COUNT 3'
    lines = await c.ok("UID SEARCH RETURN () SEEN")
    assert lines[0].endswith(" UID ALL 2,4")
    lines = await c.ok("SEARCH RETURN (COUNT) DELETED")
    assert lines[0].endswith(" COUNT 0")
    await c.ok("ENABLE IMAP4rev2")
    lines = await c.ok("SEARCH SEEN")
    assert lines[0].endswith(" ALL 2,4") and lines[0].startswith("* ESEARCH")


async def test_text_search_same_answers_before_and_after_indexing(server: ImapServer) -> None:
    """The full-text prefilter only skips messages that cannot match: the answers are those
    of an exhaustive search, whether messages were indexed at delivery or by the search."""
    from caducee.services import text_index

    words = ["ordonnance", "radiographie", "kinésithérapie", "bilan sanguin"]
    for i in range(24):
        body = f"Message {i} : {words[i % 4]} et suivi n°{i}"
        await deliver_local(
            server.app,
            mail(f"Dossier {i}", "a@ailleurs.test", body, "1 Feb 2024 10:00 +0000"),
            [LOGIN],
        )
    expected = {
        "TEXT ordonnance": " ".join(str(n) for n in range(1, 25, 4)),
        'BODY "donnance et"': " ".join(str(n) for n in range(1, 25, 4)),
        "TEXT SANGUIN": " ".join(str(n) for n in range(4, 25, 4)),
        'TEXT "dossier 1"': "2 11 12 13 14 15 16 17 18 19 20",
        "BODY ordonnance NOT TEXT radiographie": " ".join(str(n) for n in range(1, 25, 4)),
        "OR BODY kin BODY radio": " ".join(str(n) for n in range(1, 25) if n % 4 in (2, 3)),
        "TEXT absentissime": "",
    }
    c = await server.client()
    await c.ok("SELECT INBOX")
    for criteria, numbers in expected.items():  # first search: indexes as it goes
        assert (await c.ok(f"SEARCH {criteria}"))[0] == f"* SEARCH {numbers}".rstrip(), criteria
    text_index.filter_cache(server.app).clear()
    await text_index.indexer(server.app).drain()
    for criteria, numbers in expected.items():  # from the stored filters
        assert (await c.ok(f"SEARCH {criteria}"))[0] == f"* SEARCH {numbers}".rstrip(), criteria


async def test_subject_and_address_searches_in_a_folder_larger_than_the_caches(
    server: ImapServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEARCH SUBJECT / FROM / TO / CC read each message's casefolded Subject and addresses
    (issue 17), kept per node; a folder larger than that memory and than the metadata's is
    searched whole, again and again, with the same answers (the caches here hold ~3 messages)."""
    monkeypatch.setattr(mailstore, "HEADS_CACHE_BYTES", 800)
    monkeypatch.setattr(mailstore, "META_CACHE_BYTES", 3 * 4096)
    for n in range(1, 13):
        sender = f"Autre <a{n}@ailleurs.test>"
        if n % 4 == 0:
            sender = "Xavier Dupont <x.dupont@labo.test>"
        subject = "=?utf-8?q?Compte_rendu_=C3=A9chographie?=" if n % 3 == 0 else f"Note {n}"
        raw = mail(subject, sender, "corps", "1 Feb 2024 10:00 +0000")
        await deliver_local(server.app, raw, [LOGIN])
    c = await server.client()
    await c.ok("SELECT INBOX")
    for _ in range(2):
        assert (await c.ok("SEARCH FROM xavier"))[0] == "* SEARCH 4 8 12"
        assert (await c.ok('SEARCH FROM "x.dupont@LABO"'))[0] == "* SEARCH 4 8 12"
        assert (await c.ok("SEARCH CHARSET UTF-8 SUBJECT {12+}\r\nÉCHOGRAPHIE"))[0] == (
            "* SEARCH 3 6 9 12"
        )
        assert (await c.ok("UID SEARCH OR SUBJECT note FROM xavier NOT CC copie"))[0] == "* SEARCH"
        assert (await c.ok("SEARCH SUBJECT note FROM a5@"))[0] == "* SEARCH 5"
        assert (await c.ok("SEARCH TO dr@cabinet.test SUBJECT rendu"))[0] == "* SEARCH 3 6 9 12"
    assert len(mailstore.meta_cache(server.app).entries) <= 3
    # The Inbox's rows, kept for the next search, are weighed for caducee_cache_bytes.
    rows = server.app.component(mailstore.FolderRowsCache, mailstore.FolderRowsCache)
    assert rows.size == 12 * mailstore.ROW_BYTES
    assert bounded_cache.sizes()["folder-rows"] >= rows.size


def head_mail(subject: str | None, sender: str, to: str = LOGIN, cc: str | None = None) -> bytes:
    lines = [f"From: {sender}", f"To: {to}"]
    if cc is not None:
        lines.append(f"Cc: {cc}")
    if subject is not None:
        lines.append(f"Subject: {subject}")
    return ("\r\n".join(lines) + "\r\n\r\ncorps\r\n").encode()


#: What a client sees for searches on Subject / From / To / Cc alone and mixed with flags,
#: numbers and sizes (the messages of the test below; 1 and 6 are \Seen).
HEAD_SEARCHES = {
    "SUBJECT strasse": "1 3",  # "Straße" casefolds to "strasse"
    "CHARSET UTF-8 SUBJECT {7+}\r\nstraße": "1 3",
    "SUBJECT NOTE": "2 6",
    "SUBJECT note UNSEEN": "2",
    "UNSEEN SUBJECT strasse": "3",
    "OR FROM xavier TO martin": "1 3 5 6",
    "NOT SUBJECT note": "1 3 4 5",  # 5 has no Subject
    'FROM "a2@ailleurs.test"': "2",  # <a2 (bureau)@ (site) ailleurs.test>
    'FROM "autre a2@"': "2",  # "name local@host"
    "FROM xavier NOT SEEN": "5",
    "CC xavier": "6",
    "FROM martin": "",  # in a To only
    "OR FROM copie TO copie": "",  # in a Cc only
    "TO x.dupont": "",  # in a From only
    "CC copie TO dr@cabinet.test": "1 3",
    "SUBJECT note 3:*": "6",
    "UID SEARCH SUBJECT note UID 1:5": "2",
    "LARGER 1 SUBJECT compte": "4",
    "SMALLER 1 SUBJECT compte": "",
    "OR SUBJECT rien FROM rien": "",
}


@pytest.mark.parametrize("compact", [False, True], ids=["rows", "compact-rows"])
async def test_subject_and_address_searches_cached_or_not(
    server: ImapServer, monkeypatch: pytest.MonkeyPatch, compact: bool
) -> None:
    """SUBJECT / FROM / TO / CC, alone or with other keys, answer the same whether the
    messages' heads are cached (matched on them in one pass), not cached yet, or some of them
    only; a message expunged by another session and not yet reported is left out, the others
    keep their numbers (RFC 2180 §4.1.1)."""
    if compact:  # the folder's rows kept as typed arrays, as for a large folder
        monkeypatch.setattr(mailstore, "COMPACT_ROWS", 1)
    raws = [
        head_mail("Straße fermée", "Xavier Dupont <x.dupont@labo.test>", cc="copie@ailleurs.test"),
        head_mail("Note 2", "Autre <a2 (bureau)@ (site) ailleurs.test>"),
        head_mail(
            "STRASSE ouverte",
            "Secretariat <secret@cabinet.test>",
            to="Dr Martin <dr@cabinet.test>",
            cc="copie@ailleurs.test",
        ),
        head_mail("Compte rendu", "labo@ailleurs.test"),
        head_mail(None, "xavier@autre.test"),
        head_mail(
            "Note 6 pour Xavier", "Xavier Dupont <x.dupont@labo.test>", cc="Xavier <x@c.test>"
        ),
    ]
    for raw in raws:
        await deliver_local(server.app, raw, [LOGIN])
    heads = mailstore.heads_cache(server.app)
    c = await server.client()
    await c.ok("SELECT INBOX")
    await c.ok("STORE 1,6 +FLAGS.SILENT (\\Seen)")

    async def answers() -> dict[str, str]:
        found = {}
        for criteria in HEAD_SEARCHES:
            command = criteria if criteria.startswith("UID ") else f"SEARCH {criteria}"
            found[criteria] = (await c.ok(command))[0].removeprefix("* SEARCH").strip()
        return found

    heads.clear()
    mailstore.meta_cache(server.app).clear()
    assert await answers() == HEAD_SEARCHES  # none cached: loaded on the way
    assert len(heads.entries) == 6
    assert await answers() == HEAD_SEARCHES  # all cached
    for blob_id in list(heads.entries)[::2]:
        heads.discard(blob_id)
    assert await answers() == HEAD_SEARCHES  # half of them

    other = await server.client()
    await other.ok("SELECT INBOX")
    await other.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    await other.ok("EXPUNGE")
    for blob_id in list(heads.entries)[1::2]:
        heads.discard(blob_id)
    lines = await c.ok("SEARCH NOT SUBJECT note")
    assert lines[0] == "* SEARCH 1 3 5" and "* 4 EXPUNGE" not in lines
    assert (await c.ok("SEARCH SUBJECT compte"))[0] == "* SEARCH"
    assert (await c.ok("NOOP"))[0] == "* 4 EXPUNGE"
    assert (await c.ok("SEARCH NOT SUBJECT note"))[0] == "* SEARCH 1 3 4"
    assert (await c.ok("SEARCH SUBJECT note"))[0] == "* SEARCH 2 5"
