"""``caducee mailbox reindex ADDRESS | --all`` (issue 21): the SEARCH TEXT index rebuilt by the
command line while a real ``caducee serve`` answers IMAP, resumed after an interruption,
audited, with the shared progress bar on a terminal and none when the output is piped."""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.app import open_app
from caducee.config import Settings
from caducee.services import text_index
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from caducee.store.tables import audit_log, mailboxes, message_text_index, messages
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners
from tests.test_patient_cli import in_terminal

OWNER = "dr@cabinet.test"
COLLEAGUE = "associe@cabinet.test"
#: (subject, body): three of five speak of an « échographie ».
MESSAGES = [
    ("Compte rendu", "Échographie abdominale sans particularité."),
    ("Ordonnance", "Renouvellement du traitement pour trois mois."),
    ("Résultats", "Voir l'échographie jointe, foie normal."),
    ("Rendez-vous", "Consultation de suivi mardi prochain."),
    ("Demande d'avis", "Pouvez-vous relire cette échographie cardiaque ?"),
]


def raw(subject: str, body: str) -> bytes:
    return (
        f"From: confrere@ailleurs.test\r\nTo: {OWNER}\r\nSubject: {subject}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()


def caducee(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", *args, "--data", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )


def setup_installation(settings: Settings, listeners: dict[str, str]) -> str:
    """A practice, two practitioners, five messages for OWNER, one for COLLEAGUE, all indexed
    (as the maintenance task does); OWNER's app password."""
    prepare(settings, listeners)

    async def go() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, OWNER)
            await person(app, COLLEAGUE)
            for subject, body in MESSAGES:
                await deliver_local(app, raw(subject, body), [OWNER], source="t")
            await deliver_local(app, raw("Échographie", "échographie"), [COLLEAGUE], source="t")
            await text_index.indexer(app).drain()
            await text_index.index_unindexed(app)
            return await create_app_password(app, OWNER, "Thunderbird")

    return asyncio.run(go())


def filters(settings: Settings, address: str) -> dict[int, bytes]:
    """message id → recorded filter, for the messages of ``address``'s mailbox."""

    async def go() -> dict[int, bytes]:
        async with open_app(settings) as app, app.db.read() as conn:
            rows = await conn.execute(
                select(message_text_index.c.message_id, message_text_index.c.bloom)
                .join(messages, messages.c.id == message_text_index.c.message_id)
                .where(messages.c.mailbox_id == await mailbox_id(conn, address))
            )
            return {r.message_id: bytes(r.bloom) for r in rows}

    return asyncio.run(go())


async def mailbox_id(conn: AsyncConnection, address: str) -> int:
    result = await conn.execute(select(mailboxes.c.id).where(mailboxes.c.address == address))
    return int(result.scalar_one())


def message_ids(settings: Settings, address: str) -> list[int]:
    async def go() -> list[int]:
        async with open_app(settings) as app, app.db.read() as conn:
            box = await mailbox_id(conn, address)
            rows = await conn.execute(
                select(messages.c.id).where(messages.c.mailbox_id == box).order_by(messages.c.id)
            )
            return [r.id for r in rows]

    return asyncio.run(go())


def drop_filters(settings: Settings, address: str, *, zero: bool = False) -> None:
    """Delete ``address``'s filters, or (``zero``) overwrite them with empty ones — a damaged
    index that « proves » every word absent."""
    ids = message_ids(settings, address)

    async def go() -> None:
        async with open_app(settings) as app, app.db.write() as conn:
            where = message_text_index.c.message_id.in_(ids)
            if zero:
                await conn.execute(update(message_text_index).where(where).values(bloom=bytes(32)))
            else:
                await conn.execute(delete(message_text_index).where(where))

    asyncio.run(go())


def reindex_audit(settings: Settings) -> list[tuple[str, str, str]]:
    async def go() -> list[tuple[str, str, str]]:
        async with open_app(settings) as app, app.db.read() as conn:
            rows = await conn.execute(
                select(audit_log.c.action, audit_log.c.target, audit_log.c.actor)
                .where(audit_log.c.action.like("mailbox.reindex%"))
                .order_by(audit_log.c.seq)
            )
            return [(r.action, r.target, r.actor) for r in rows]

    return asyncio.run(go())


@contextmanager
def serving(settings: Settings, tmp_path: Path) -> Iterator[int]:
    """A real node; the IMAPS port."""
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path, timeout=120)  # a loaded machine
        yield int(bound["imaps"].rsplit(":", 1)[1])
        proc.terminate()
        proc.wait(15)


def search_text(settings: Settings, port: int, password: str, word: str) -> list[bytes]:
    """``UID SEARCH TEXT word`` in OWNER's INBOX, as a mail client sends it."""
    context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    with imaplib.IMAP4_SSL("localhost", port, ssl_context=context, timeout=30) as imap:
        imap.login(OWNER, password)
        imap.select("INBOX", readonly=True)
        status, data = imap.uid("SEARCH", "TEXT", f'"{word}"')
        assert status == "OK", data
        return sorted(data[0].split())


def test_reindex_while_serving_rebuilds_what_search_text_reads(
    settings: Settings, tmp_path: Path
) -> None:
    settings.hostname = "localhost"
    password = setup_installation(settings, {"imaps": "127.0.0.1:0"})
    owned = message_ids(settings, OWNER)
    drop_filters(settings, COLLEAGUE, zero=True)
    with serving(settings, tmp_path) as port:
        expected = search_text(settings, port, password, "chographie")
        assert len(expected) == 3
        # The index rows of a mailbox dropped, the server running: the command rebuilds them.
        drop_filters(settings, OWNER)
        assert filters(settings, OWNER) == {}
        done = caducee(settings, "mailbox", "reindex", OWNER)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Index de recherche reconstruit ({OWNER}) : 5 message(s) relu(s)" in done.stdout
        assert "━" not in done.stdout + done.stderr  # piped: no progress bar
        assert sorted(filters(settings, OWNER)) == owned
        assert list(filters(settings, COLLEAGUE).values()) == [bytes(32)]  # left alone
        assert search_text(settings, port, password, "chographie") == expected
        assert search_text(settings, port, password, "radiographie") == []
    # A damaged index answers wrong: every word « absent »...
    drop_filters(settings, OWNER, zero=True)
    with serving(settings, tmp_path) as port:
        assert search_text(settings, port, password, "chographie") == []
        # ... until the command rebuilds it, the node still serving.
        done = caducee(settings, "mailbox", "reindex", "--all")
        assert done.returncode == 0, done.stdout + done.stderr
        assert (
            "(toutes les boîtes) : 6 message(s) relu(s), 0 filtre(s) manquant(s) recréé(s), "
            "6 filtre(s) différent(s) remplacé(s)" in done.stdout
        )
        assert "Redémarrez-les" in done.stdout  # this node still holds the damaged ones
    with serving(settings, tmp_path) as port:
        assert search_text(settings, port, password, "chographie") == expected
    assert bytes(32) not in filters(settings, COLLEAGUE).values()
    assert reindex_audit(settings) == [
        ("mailbox.reindex", OWNER, "cli"),
        ("mailbox.reindex.done", OWNER, "cli"),
        ("mailbox.reindex", "*", "cli"),
        ("mailbox.reindex.done", "*", "cli"),
    ]


def test_reindex_resumes_where_it_stopped_and_shows_progress_on_a_terminal(
    settings: Settings,
) -> None:
    setup_installation(settings, {})
    owned = message_ids(settings, OWNER)
    drop_filters(settings, OWNER)
    # An interrupted run left its checkpoint: the last message it had done.
    checkpoint = settings.data_dir / f"reindex-{_owner_mailbox(settings)}.json"
    checkpoint.write_text(f'{{"after": {owned[1]}}}', "utf-8")
    done = caducee(settings, "mailbox", "reindex", OWNER)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Reprise de la réindexation interrompue (après le message n° {owned[1]})" in (
        done.stdout
    )
    assert "3 message(s) relu(s), 3 filtre(s) manquant(s)" in done.stdout
    assert sorted(filters(settings, OWNER)) == owned[2:]
    assert not checkpoint.exists()  # complete: the next run starts from the first message
    shown = in_terminal("mailbox", "reindex", OWNER, "--data", str(settings.data_dir))
    assert "Réindexation" in shown and "━" in shown, shown
    assert "5 message(s) relu(s), 2 filtre(s) manquant(s) recréé(s)" in shown
    assert sorted(filters(settings, OWNER)) == owned
    wrong = caducee(settings, "mailbox", "reindex")
    assert wrong.returncode != 0 and "Indiquez une adresse ou --all" in wrong.stderr
    unknown = caducee(settings, "mailbox", "reindex", "personne@cabinet.test")
    assert unknown.returncode != 0 and "personne@cabinet.test" in unknown.stderr


def _owner_mailbox(settings: Settings) -> int:
    async def go() -> int:
        async with open_app(settings) as app, app.db.read() as conn:
            return await mailbox_id(conn, OWNER)

    return asyncio.run(go())
