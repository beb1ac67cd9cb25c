"""The « Télétransmission » page of the webmail: the lots of the TLT mailboxes one owns or is
delegated, those to send again first with their deadline, filters, pages, unmatched returns,
the CSV export, the badge in the navigation; other people's mailboxes refused (both backends)."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.health import teletransmission
from caducee.services import mailboxes
from caducee.store import directory_repo, lots_repo
from tests.health.lots_seed import Seeded, seed
from tests.web.conftest import Clock, People, WebClient
from tests.web.helpers import assert_safe_download, assert_strict_page, audit_actions

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
TLT = "tlt@cabinet-a.test"
ROW = re.compile(r'<tr class="(action)?">.*?<td class="compostage">(\d{19})', re.S)


@pytest.fixture
async def seeded(app: App, people: People) -> Seeded:
    await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, DOCTOR)
    return await seed(app, TLT)


def compostages(html: str) -> list[tuple[bool, str]]:
    """(needs action, compostage) of each lot row, in page order."""
    return [(bool(action), number) for action, number in ROW.findall(html)]


async def test_lots_needing_action_first_with_deadlines(
    app: App, web: WebClient, seeded: Seeded
) -> None:
    await web.login(DOCTOR)
    home = await web.get("/accueil")
    assert 'href="/teletransmission"' in home.text and 'id="lots-badge"' not in home.text
    page = await web.get("/teletransmission")
    assert page.status_code == 200
    assert_strict_page(page)
    assert 'aria-current="page">Télétransmission' in page.text
    rows = compostages(page.text)
    assert [number for _, number in rows[:3]] == [
        seeded.late.compostage,
        seeded.rejected.compostage,
        seeded.undelivered.compostage,
    ]
    assert [action for action, _ in rows] == [True] * 3 + [False] * 4
    assert "3 lots à réémettre" in page.text
    assert "sans ARL après le délai : à réémettre" in page.text and "ARL positif" in page.text
    # The unmatched return, and the counts in the state filter.
    assert "Retours non rapprochés" in page.text and "retour non reconnu" in page.text
    assert "envoyé, ARL attendu (2)" in page.text and "Tous (7)" in page.text
    english = await web.get("/teletransmission?lang=en")
    assert "3 lots to send again" in english.text and "no ARL after the delay" in english.text


async def test_filters_and_refusals(
    app: App, web: WebClient, seeded: Seeded, people: People
) -> None:
    await web.login(DOCTOR)
    rejected = await web.get("/teletransmission?etat=arl_negatif")
    assert [n for _, n in compostages(rejected.text)] == [seeded.rejected.compostage]
    assert "Tous (7)" in rejected.text  # the counts stay those of every state
    since = (dt.date.today() - dt.timedelta(days=4)).isoformat()
    recent = await web.get(f"/teletransmission?du={since}&boite={TLT}")
    numbers = [n for _, n in compostages(recent.text)]
    assert seeded.late.compostage not in numbers and len(numbers) == 5
    assert f'value="{since}"' in recent.text
    bad_date = await web.get("/teletransmission?du=hier")
    assert bad_date.status_code == 200 and "AAAA-MM-JJ" in bad_date.text
    bad_state = await web.get("/teletransmission?etat=perdu")
    assert "État de lot inconnu « perdu »" in bad_state.text
    assert len(compostages(bad_state.text)) == 7  # the filter is dropped, not the page
    personal = await web.get(f"/teletransmission?boite={DOCTOR}")
    assert "n'est pas une boîte de télétransmission" in html.unescape(personal.text)
    assert compostages(personal.text) == []
    # Another account's TLT mailbox: refused, like any mailbox one may not open.
    await mailboxes.add_mailbox(app, "tlt@cabinet-b.test", MailboxType.TLT, people.doctor_b.login)
    other = await web.get("/teletransmission?boite=tlt@cabinet-b.test")
    assert other.status_code == 403
    csv_other = await web.get("/teletransmission/lots.csv?boite=tlt@cabinet-b.test")
    assert csv_other.status_code == 403


async def test_csv_export(app: App, web: WebClient, seeded: Seeded) -> None:
    await web.login(DOCTOR)
    page = await web.get("/teletransmission?etat=reemis")
    assert 'href="/teletransmission/lots.csv?etat=reemis"' in page.text
    exported = await web.get("/teletransmission/lots.csv?etat=reemis")
    assert_safe_download(exported)
    assert exported.headers["content-type"].startswith("text/csv")
    text = exported.content.decode("utf-8")
    assert text.startswith("\ufeffboîte,")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == 2 and rows[1][2] == seeded.resent.compostage and rows[1][7] == "réémis"
    every = await web.get("/teletransmission/lots.csv")
    assert len(list(csv.reader(io.StringIO(every.text)))) == 8
    assert (DOCTOR, "tlt.export", TLT, "ok") in await audit_actions(app)
    bad = await web.get("/teletransmission/lots.csv?du=2026-13-01")
    assert bad.status_code == 400 and "AAAA-MM-JJ" in bad.text


async def test_badge_after_the_watchdog_and_delegation(
    app: App, web: WebClient, seeded: Seeded, new_client: object, clock: Clock
) -> None:
    await teletransmission.watchdog(app, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    await web.login(DOCTOR)
    home = await web.get("/accueil")
    badge = re.search(r'id="lots-badge" aria-hidden="true">(\d+)</span>', home.text)
    assert badge and badge.group(1) == "3"
    assert "(3 lots à réémettre)" in home.text  # what a screen reader says
    # The secretary sees nothing until the mailbox is delegated to her.
    async with new_client() as http:  # type: ignore[operator]
        secretary = WebClient(http)
        await secretary.login(SECRETARY)
        assert 'href="/teletransmission"' not in (await secretary.get("/accueil")).text
        nothing = await secretary.get("/teletransmission")
        assert "accès à aucune boîte de télétransmission" in html.unescape(nothing.text)
        await mailboxes.delegate(app, TLT, SECRETARY, can_send=False)
        page = await secretary.get("/teletransmission")
        assert len(compostages(page.text)) == 7 and 'id="lots-badge"' in page.text
        refused = await secretary.get(f"/teletransmission?boite={DOCTOR}")
        assert refused.status_code == 403


async def test_pages_of_100(app: App, web: WebClient, people: People) -> None:
    await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, DOCTOR)
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_address(conn, TLT)
    assert box is not None
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    async with app.db.write() as conn:
        for n in range(130):
            await lots_repo.insert_lot(
                conn,
                {
                    "practice_id": box.practice_id,
                    "mailbox_id": box.id,
                    "sender_number": "12345678901234",
                    "compostage": f"2026120409301{n:06d}",
                    "fund": "01422@422.01.rss.fr",
                    "size": 1000,
                    "sent_at": start + dt.timedelta(seconds=n),
                    "delivery": "delivered",
                },
            )
    await web.login(DOCTOR)
    first = await web.get("/teletransmission")
    rows = compostages(first.text)
    assert len(rows) == 100 and rows[0][1] == "2026120409301000129"  # newest first
    assert "Page 1 sur 2" in first.text and 'href="?page=2"' in first.text
    second = await web.get("/teletransmission?page=2")
    assert len(compostages(second.text)) == 30 and 'rel="prev"' in second.text
    beyond = await web.get("/teletransmission?page=abc")
    assert "Page 1 sur 2" in beyond.text
