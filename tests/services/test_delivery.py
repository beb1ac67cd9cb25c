"""Local delivery: group commit, all-or-nothing per delivery, nothing partial left behind."""

from __future__ import annotations

import asyncio
import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from caducee.app import App
from caducee.domain import message_meta
from caducee.domain.message_meta import META_VERSION, extract_meta
from caducee.errors import NotFound, QuotaExceeded
from caducee.flows import inbound
from caducee.services import mailboxes, messages, quota_notices
from caducee.services.delivery import deliver_local, pipeline
from caducee.store.tables import blobs as blobs_table
from caducee.store.tables import mailboxes as mailboxes_table
from caducee.store.tables import messages as messages_table
from tests.services.helpers import person, practice


def sample(n: int, size: int = 2000) -> bytes:
    return (f"From: a@ailleurs.test\r\nSubject: message {n}\r\n\r\n" + "x" * size + "\r\n").encode()


async def count_rows(app: App) -> int:
    async with app.db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(messages_table)) or 0)


async def stored_blobs(app: App) -> int:
    """Blobs in files and in the database."""
    async with app.db.read() as conn:
        rows = int(await conn.scalar(select(func.count()).select_from(blobs_table)) or 0)
    return rows + sum(1 for p in app.settings.blobs_dir.rglob("*") if p.is_file())


async def test_concurrent_deliveries_share_commits(app: App) -> None:
    await practice(app)
    await person(app, "a@cabinet.test")
    await person(app, "b@cabinet.test")
    results = await asyncio.gather(
        *(deliver_local(app, sample(n), ["a@cabinet.test", "B@cabinet.test"]) for n in range(60))
    )
    assert all(len(r) == 2 for r in results)
    for address in ("a@cabinet.test", "b@cabinet.test"):
        box = await mailboxes.get_mailbox(app, address)
        uids = sorted(m.uid for r in results for m in r if m.mailbox_id == box.id)
        assert uids == list(range(1, 61))
        inbox = (await mailboxes.list_folders(app, box.id))[0]
        assert inbox.uidnext == 61
        modseqs = [m.modseq for r in results for m in r if m.mailbox_id == box.id]
        # one new MODSEQ per folder per group commit (RFC 7162 allows messages to share one)
        assert min(modseqs) > 1 and max(modseqs) == inbox.highestmodseq <= 61
        assert box.used_bytes == sum(len(sample(n)) for n in range(60))
    assert pipeline(app).groups < 60  # deliveries were grouped
    message, raw = await messages.read_message(app, results[7][0].id)
    assert raw == sample(7) and message.meta["subject"] == "message 7"


async def test_a_full_mailbox_fails_only_its_delivery(app: App) -> None:
    await practice(app)
    await person(app, "a@cabinet.test")
    await person(app, "full@cabinet.test")
    await mailboxes.set_quota(app, "full@cabinet.test", 1024 * 1024)
    big = sample(0, 900 * 1024)
    await deliver_local(app, big, ["full@cabinet.test"])
    await quota_notices.notices(app).drain()  # past 80 %: its owner was told (one more row)
    before_rows, before_blobs = await count_rows(app), await stored_blobs(app)
    outcomes = await asyncio.gather(
        deliver_local(app, sample(1), ["a@cabinet.test"]),
        deliver_local(app, big, ["a@cabinet.test", "full@cabinet.test"]),  # all or nothing
        deliver_local(app, sample(2), ["a@cabinet.test"]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], QuotaExceeded) and "pleine" in outcomes[1].fr
    assert not isinstance(outcomes[0], BaseException) and not isinstance(outcomes[2], BaseException)
    assert await count_rows(app) == before_rows + 2
    assert await stored_blobs(app) == before_blobs + 2  # the refused copies left no blob behind
    a = await mailboxes.get_mailbox(app, "a@cabinet.test")
    assert a.used_bytes == len(sample(1)) + len(sample(2))


async def test_unknown_recipient_is_refused_before_storing(app: App) -> None:
    await practice(app)
    await person(app, "a@cabinet.test")
    with pytest.raises(NotFound, match="inconnu"):
        await deliver_local(app, sample(1), ["a@cabinet.test", "nobody@cabinet.test"])
    assert await count_rows(app) == 0


def test_meta_decodes_headers_and_survives_broken_mime() -> None:
    raw = (
        b"Subject: =?utf-8?q?R=C3=A9sultats_d=27analyse?=\r\n"
        b"From: =?iso-8859-1?q?H=E9l=E8ne?= <h@ailleurs.test>\r\n"
        b"To: \xc3\x89lise <e@cabinet.test>\r\n"
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n'
        b"--zz\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Bonjour H=E9l=E8ne,\r\n  suite =\r\ndu bilan\r\n"
        b"--zz\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!notbase64"
    )
    meta = extract_meta(raw)
    assert meta["subject"] == "Résultats d'analyse"
    assert meta["from"] == "Hélène <h@ailleurs.test>"
    assert meta["to"] == "Élise <e@cabinet.test>"
    assert meta["snippet"] == "Bonjour Hélène, suite du bilan"
    folded = extract_meta(
        b"Subject: =?utf-8?q?Compte_rendu?=\r\n =?utf-8?q?_de_l=27=C3=A9chographie?=\r\n"
        b"subject: second subject, ignored\r\n"
        b"From: M\xe9decin \xff <m@ailleurs.test>\r\n\r\nbody\r\n"
    )
    assert folded["subject"] == "Compte rendu de l'échographie"
    assert folded["from"] == "M\ufffddecin \ufffd <m@ailleurs.test>"  # not UTF-8: replaced
    for broken in (
        b"",
        b"\x00\xff\xfe",
        b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nno boundary",
        b"Subject: =?bogus?x?zz?=\r\n\r\n",
    ):
        assert extract_meta(broken)["v"] == META_VERSION


async def test_a_cached_address_is_checked_again_when_committing(app: App) -> None:
    """The RCPT cache may name a mailbox whose address changed meanwhile: nothing is stored."""
    await practice(app)
    await person(app, "a@cabinet.test")
    await inbound.check_recipient(app, "a@cabinet.test")  # now in the node's RCPT cache
    async with app.db.write() as conn:
        await conn.execute(
            update(mailboxes_table)
            .where(mailboxes_table.c.address == "a@cabinet.test")
            .values(address="z@cabinet.test")
        )
    with pytest.raises(NotFound, match="inconnu"):
        await deliver_local(app, sample(1), ["a@cabinet.test"])
    assert await count_rows(app) == 0 and await stored_blobs(app) == 0


def test_snippet_comes_from_the_first_inline_text_part_whatever_its_encoding() -> None:
    def message(*parts: bytes, boundary: bytes = b"b") -> bytes:
        return (
            b'Subject: x\r\nContent-Type: multipart/mixed; boundary="'
            + boundary
            + b'"\r\n\r\n'
            + b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
            + b"--"
            + boundary
            + b"--\r\n"
        )

    attached = b"Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nannexe\r\n"
    html = b"Content-Type: text/html\r\n\r\n<p>page</p>\r\n"
    base64_text = (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes("Résultat    normal\n".encode()).replace(b"\n", b"\r\n")
    )
    qp_text = (
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nH=E9l=E8ne =\r\nva bien\r\n"
    )
    assert extract_meta(message(attached, html, base64_text, qp_text))["snippet"] == (
        "Résultat normal"
    )
    assert extract_meta(message(attached, qp_text, base64_text))["snippet"] == "Hélène va bien"
    nested = b"Content-Type: message/rfc822\r\n\r\n" + message(html, qp_text, boundary=b"in")
    assert extract_meta(message(html, nested))["snippet"] == "Hélène va bien"
    long_text = b"Content-Type: text/plain\r\n\r\n" + b"mot " * 100_000 + b"\r\n"
    assert extract_meta(message(long_text))["snippet"] == " ".join(["mot"] * 100)[:200]


@given(st.text(alphabet=" \t\r\nabé-", max_size=3000))
def test_snippet_words_match_a_full_split(text: str) -> None:
    assert message_meta._first_words(text) == " ".join(text.split())[: message_meta.SNIPPET_CHARS]


async def test_a_failed_group_fails_only_its_own_deliveries(app: App) -> None:
    """A transaction that fails (the database refuses it) fails the deliveries of its group,
    leaves none of their blobs, and the groups after it commit (on SQLite: in the same series
    of transactions, one worker thread)."""
    await practice(app)
    await person(app, "a@cabinet.test")
    refused = len(sample(0, size=3333))  # the one message of this size
    async with app.db.write() as conn:  # the database itself refuses that row
        if app.db.is_sqlite:
            await conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_one BEFORE INSERT ON messages WHEN NEW.size = {refused} "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.size = {refused} THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON messages "
                "FOR EACH ROW EXECUTE FUNCTION refuse_one()"
            )
    pipeline(app).max_group = 1  # one delivery per group
    outcomes = await asyncio.gather(
        *(
            deliver_local(app, sample(0, size=3333) if n == 7 else sample(n), ["a@cabinet.test"])
            for n in range(20)
        ),
        return_exceptions=True,
    )
    failed = [n for n, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [7]
    assert await count_rows(app) == 19  # the groups after the failed one were stored
    assert await stored_blobs(app) == 19  # none left of the failed group
    assert pipeline(app).delivered == 19
