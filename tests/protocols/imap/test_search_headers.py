"""SEARCH HEADER on any field (RFC 3501 §6.4.4) reads the header fields extracted at delivery,
and a search never holds the node (issue 17): while one session's SEARCH is at work, other
sessions — IMAP and SMTP — are answered; past ``[imap] search_budget_seconds``, ``NO [LIMIT]``
(RFC 5530 §3).

No test here reads a clock: ordering is observed through the real listeners, with the
search's off-loop work held at a gate until the other doors have answered."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, update

from caducee.app import App
from caducee.domain.message_meta import HEADER_BLOCK_BYTES
from caducee.domain.model import StoredMessage
from caducee.protocols.imap import search as imap_search
from caducee.services import mailstore
from caducee.services.delivery import deliver_local
from caducee.store.keyring import mailbox_scope
from caducee.store.tables import messages
from tests.protocols.imap.conftest import LOGIN, ImapServer, tagged
from tests.protocols.smtp.conftest import SmtpClient, limits_for_tests, port_of, start_listeners


def sample(n: int) -> bytes:
    """A message with the header fields SEARCH HEADER must find: several Received, a folded
    field, an RFC 2047 encoded word, 8-bit UTF-8 (RFC 6532), a MIME Content-Type."""
    return (
        f"Received: from relais{n}.ailleurs.test by mx.cabinet.test; Mon, 7 Dec 2026\r\n"
        f"Received: from poste{n}.ailleurs.test by relais{n}.ailleurs.test\r\n"
        f"From: Labo <labo@ailleurs.test>\r\nTo: {LOGIN}\r\n"
        f"Subject: Resultats {n}\r\n"
        f"Message-ID: <resultat-{n}@labo.ailleurs.test>\r\n"
        f"X-Mailer: Logiciel Labo {n}.0\r\n"
        f"X-Dossier: premiere ligne {n}\r\n\tsuite repliee\r\n"
        f"X-Note: =?utf-8?q?d=C3=A9j=C3=A0_vu_{n}?=\r\n"
        f"X-Service: Biologie m\u00e9dicale {n}\r\n"
        'Content-Type: multipart/mixed; boundary="sep"\r\nMIME-Version: 1.0\r\n\r\n'
        "--sep\r\nContent-Type: text/plain; charset=utf-8\r\nX-Partie: interne\r\n\r\n"
        f"glycemie {n}\r\n--sep--\r\n"
    ).encode()


async def make_legacy(app: App, stored: list[StoredMessage]) -> None:
    """Metadata as stored before META_VERSION 3: no header fields in it."""
    async with app.db.write() as conn:
        for message in stored:
            scope = mailbox_scope(message.mailbox_id)
            sealed = (
                await conn.execute(
                    select(messages.c.meta_sealed).where(messages.c.id == message.id)
                )
            ).scalar_one()
            meta = json.loads(
                await app.keyring.open(conn, scope, message.blob_id, "meta", bytes(sealed))
            )
            del meta["fields"]
            meta["v"] = 2
            resealed = await app.keyring.seal(
                conn, scope, message.blob_id, "meta", json.dumps(meta).encode()
            )
            await conn.execute(
                update(messages).where(messages.c.id == message.id).values(meta_sealed=resealed)
            )
    mailstore.meta_cache(app).entries.clear()


async def deliver(app: App, raws: list[bytes]) -> list[StoredMessage]:
    return [m for raw in raws for m in await deliver_local(app, raw, [LOGIN])]


@pytest.mark.parametrize("legacy", [False, True], ids=["delivered", "stored-before"])
async def test_header_search_on_any_field(server: ImapServer, legacy: bool) -> None:
    stored = await deliver(server.app, [sample(1), sample(2)])
    if legacy:
        await make_legacy(server.app, stored)
    c = await server.client()
    await c.ok("SELECT INBOX")

    async def search(criteria: str) -> str:
        return (await c.ok(f"SEARCH {criteria}"))[0]

    assert await search("HEADER Message-ID resultat-2@") == "* SEARCH 2"
    assert await search("HEADER Message-ID <RESULTAT-1@LABO") == "* SEARCH 1"
    assert await search("HEADER Message-ID x") == "* SEARCH"
    assert await search('HEADER X-Mailer "labo 1.0"') == "* SEARCH 1"
    assert await search("HEADER Received poste2.ailleurs") == "* SEARCH 2"  # the second field
    assert await search("HEADER Received relais1.ailleurs.test") == "* SEARCH 1"
    assert await search("HEADER Content-Type multipart/mixed") == "* SEARCH 1 2"
    assert await search("HEADER Content-Type text/plain") == "* SEARCH"  # a part's, not top
    assert await search("HEADER X-Partie interne") == "* SEARCH"
    assert await search('HEADER X-Dossier "1 suite repliee"') == "* SEARCH 1"  # unfolded
    assert await search("CHARSET UTF-8 HEADER X-Note {11+}\r\ndéjà vu 2") == "* SEARCH 2"
    assert await search("CHARSET UTF-8 HEADER X-Service {11+}\r\nmédicale 1") == "* SEARCH 1"
    assert await search('HEADER X-Mailer ""') == "* SEARCH 1 2"  # present, any value
    assert await search('HEADER X-Absent ""') == "* SEARCH"
    assert await search('NOT HEADER X-Note "vu 1" HEADER Subject resultats') == "* SEARCH 2"
    assert await search('OR HEADER X-Mailer "2.0" HEADER Message-ID resultat-1') == "* SEARCH 1 2"
    if legacy:  # computed once from the raw header, then kept with the metadata
        cached = [mailstore.meta_cache(server.app).get(m.blob_id) for m in stored]
        assert all(meta is not None and meta.fields is not None for meta in cached)


async def test_a_field_past_the_kept_header_block_is_not_searched(server: ImapServer) -> None:
    lines = HEADER_BLOCK_BYTES // 900 + 1
    filler = "".join(f"X-Remplissage-{i}: {'a' * 900}\r\n" for i in range(lines))
    await deliver(
        server.app,
        [f"X-Debut: oui\r\n{filler}X-Fin: oui\r\nSubject: long\r\n\r\ncorps\r\n".encode()],
    )
    c = await server.client()
    await c.ok("SELECT INBOX")
    assert (await c.ok('SEARCH HEADER X-Debut "oui"'))[0] == "* SEARCH 1"
    assert (await c.ok('SEARCH HEADER X-Fin "oui"'))[0] == "* SEARCH"


async def test_a_search_over_its_budget_is_refused_with_limit(server: ImapServer) -> None:
    await deliver(server.app, [sample(1)])
    server.app.settings.imap_search_budget_seconds = 1e-9
    c = await server.client()
    await c.ok("SELECT INBOX")
    for criteria in ("HEADER Message-ID x", "BODY glycemie", "TEXT x", "SUBJECT x", "FROM x"):
        answer = tagged(await c.command(f"SEARCH {criteria}"))
        assert answer.startswith("NO [LIMIT] Recherche trop couteuse"), answer
        assert "/ Search too costly" in answer
    assert tagged(await c.command("NOOP")).startswith("OK")  # the session goes on


class Gate:
    """Holds a worker thread in ``function`` until released; tells when one is held."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: Any) -> Any:
        assert threading.current_thread() is not threading.main_thread(), "ran on the loop"
        self.entered.set()
        assert self.release.wait(30), "never released"
        return self.function(*args)


@pytest.mark.parametrize(
    ("module", "stage", "criteria"),
    [
        (mailstore, "_open_metas", ""),  # decrypting and decoding the metadata
        (mailstore, "_complete", ""),  # header fields stored before, from the raw header
        (imap_search, "_match_chunk", ""),  # matching
        (imap_search, "_scan", "SUBJECT resultats"),  # one pass over the cached heads
        (mailstore, "_open_heads", "SUBJECT resultats"),  # heads not cached yet
        (imap_search, "_match_loaded", "SUBJECT resultats"),  # matching those just loaded
    ],
)
async def test_other_doors_are_answered_while_a_header_search_works(
    server: ImapServer, monkeypatch: pytest.MonkeyPatch, module: Any, stage: str, criteria: str
) -> None:
    stored = await deliver(server.app, [sample(n) for n in range(40)])
    await make_legacy(server.app, stored[:20])  # half stored before the header fields
    smtp_listeners = await start_listeners(server.app, limits_for_tests(), ("smtp",))
    try:
        smtp = await SmtpClient.connect(port_of(smtp_listeners["smtp"]))
        assert (await smtp.reply())[0].startswith("220 ")
        assert (await smtp.command("EHLO client.test"))[0].startswith("250")
        searcher, other = await server.client(), await server.client()
        await searcher.ok("SELECT INBOX")
        gate = Gate(getattr(module, stage))
        monkeypatch.setattr(module, stage, gate)
        mailstore.heads_cache(server.app).clear()
        tag = searcher.next_tag()
        criteria = criteria or "HEADER Message-ID resultat-3@"
        await searcher.send_raw(f"{tag} SEARCH {criteria}\r\n".encode())
        assert await asyncio.to_thread(gate.entered.wait, 30), "the search never got there"
        # The search is held mid-way: every other door still answers.
        assert tagged(await other.command("NOOP")).startswith("OK")
        assert tagged(await other.command('LIST "" INBOX')).startswith("OK")
        assert (await smtp.code("NOOP")).startswith("250")
        assert not gate.release.is_set()
        gate.release.set()
        lines = await searcher.until(tag, 30)
        expected = (
            "* SEARCH 4"
            if "HEADER" in criteria
            else "* SEARCH " + " ".join(str(n) for n in range(1, 41))
        )
        assert lines == [expected, f"{tag} OK SEARCH fait"]
        await smtp.close()
    finally:
        if isinstance(getattr(module, stage), Gate):
            getattr(module, stage).release.set()
        for listener in smtp_listeners.values():
            await listener.stop(1)
