"""The webmail through HTTP (both backends): folders and counts, list with sort/search/pages,
the message with its sanitised body in a sandboxed frame, attachments, actions, compose and send
through the submission pipeline, delegations, and every route refused to whoever has no right."""

from __future__ import annotations

import re
from email.parser import BytesParser
from email.policy import default
from typing import Any

import pytest

from caducee.app import App
from caducee.domain.model import Flag, SpecialUse
from caducee.services import mailboxes, webmail
from caducee.services.delivery import deliver_local
from tests.web.conftest import Clock, People, WebClient
from tests.web.helpers import assert_safe_download

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
HOSTILE_HTML = (
    "From: Labo <labo@ailleurs.test>\r\nTo: dr.martin@cabinet-a.test\r\n"
    "Subject: Resultats HTML\r\nMessage-ID: <html-1@ailleurs.test>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    '<p style="color:red" onclick="steal()">Bonjour<script>alert(1)</script>'
    '<img src="https://pixel.ailleurs.test/p.gif" onerror="x()">'
    '<a href="javascript:alert(2)">clic</a><form action="https://x"><input name=p></form></p>\r\n'
    "--b\r\nContent-Type: application/pdf\r\n"
    'Content-Disposition: attachment; filename="=?utf-8?q?compte_rendu_=C3=A9t=C3=A9.pdf?="\r\n'
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--b--\r\n"
)


def plain(subject: str, n: int = 0) -> bytes:
    return (
        f"From: Confrere {n} <confrere{n}@ailleurs.test>\r\nTo: {DOCTOR}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <m{n}-{subject.replace(' ', '')}@ailleurs.test>\r\n"
        f"\r\nCompte rendu {n} : tension normale.\r\n"
    ).encode()


async def _inbox_url(web: WebClient) -> str:
    response = await web.get("/courrier")
    assert response.status_code == 303
    box = await web.get(response.headers["location"])
    assert box.status_code == 303
    return str(box.headers["location"])


async def test_folders_list_and_search(app: App, web: WebClient, people: People) -> None:
    for n in range(60):
        await deliver_local(app, plain(f"Bilan {n:02d}", n), [DOCTOR])
    await deliver_local(app, plain("Radiographie genou", 99), [DOCTOR])
    await web.login(DOCTOR)
    inbox = await _inbox_url(web)
    page = await web.get(inbox)
    assert page.status_code == 200
    assert "Boîte de réception" in page.text and ">61<" in page.text  # unread badge
    assert page.text.count('name="uid"') == 50  # first page
    assert "Page 1 sur 2" in page.text
    second = await web.get(inbox + "?page=2")
    assert second.text.count('name="uid"') == 11
    found = await web.get(inbox + "?q=genou&champ=objet")
    assert found.text.count('name="uid"') == 1 and "Radiographie genou" in found.text
    by_text = await web.get(inbox + "?q=tension&champ=texte")
    assert by_text.text.count('name="uid"') == 50
    ascending = await web.get(inbox + "?tri=objet&ordre=asc")
    subjects = re.findall(r"/m/\d+\">([^<]+)</a>", ascending.text)
    assert subjects[0] == "Bilan 00" and subjects == sorted(subjects)
    bad_date = await web.get(inbox + "?du=hier")
    assert bad_date.status_code == 200 and "AAAA-MM-JJ" in bad_date.text


async def test_message_body_is_sanitised_in_a_sandboxed_frame(
    app: App, web: WebClient, people: People
) -> None:
    await deliver_local(app, HOSTILE_HTML.encode(), [DOCTOR])
    await web.login(DOCTOR)
    inbox = await _inbox_url(web)
    listing = await web.get(inbox)
    link = re.search(r'href="(/courrier/b/\d+/d/\d+/m/\d+)"', listing.text)
    assert link
    message = await web.get(link.group(1))
    assert message.status_code == 200
    assert "frame-src 'self'" in message.headers["content-security-policy"]
    assert '<iframe class="mail-body" sandbox="allow-popups' in message.text
    assert "Afficher les images distantes" in message.text
    assert "compte rendu été.pdf" in message.text
    body = await web.get(link.group(1) + "/corps")
    csp = body.headers["content-security-policy"]
    assert "img-src data:;" in csp and "script-src" not in csp and "sandbox" in csp
    for forbidden in ("<script", "onclick", "onerror", "javascript:", "<form", "pixel.ailleurs"):
        assert forbidden not in body.text
    assert "Bonjour" in body.text and 'style="color:red"' in body.text
    shown = await web.get(link.group(1) + "/corps?images=1")
    assert (
        "pixel.ailleurs.test" in shown.text
        and "img-src data: https:" in shown.headers["content-security-policy"]
    )
    # The message is now read.
    after = await web.get(inbox)
    assert ">1<" not in after.text or "badge" not in after.text


async def test_attachment_downloads_safely(app: App, web: WebClient, people: People) -> None:
    await deliver_local(app, HOSTILE_HTML.encode(), [DOCTOR])
    await web.login(DOCTOR)
    inbox = await _inbox_url(web)
    link = re.search(r'href="(/courrier/b/\d+/d/\d+/m/\d+)"', (await web.get(inbox)).text)
    assert link
    page = await web.get(link.group(1))
    part = re.search(r'href="([^"]+/pj/\d+)"', page.text)
    assert part
    download = await web.get(part.group(1))
    assert download.status_code == 200 and download.content.startswith(b"%PDF-1.4")
    assert download.headers["content-type"] == "application/pdf"
    assert_safe_download(download)
    disposition = download.headers["content-disposition"]
    assert (
        disposition.startswith("attachment;")
        and "filename*=UTF-8''compte%20rendu%20" in disposition
    )
    assert (await web.get(part.group(1).rsplit("/", 1)[0] + "/999")).status_code == 404


async def test_actions_flag_move_delete(app: App, web: WebClient, people: People) -> None:
    await deliver_local(app, plain("A classer", 1), [DOCTOR])
    await web.login(DOCTOR)
    inbox = await _inbox_url(web)
    page = await web.get(inbox)
    uid = re.search(r'name="uid" value="(\d+)"', page.text)
    assert uid
    actions = inbox + "/actions"
    await web.post(actions, {"action": "suivi", "uid": uid.group(1)})
    box = await mailboxes.get_mailbox(app, DOCTOR)
    access = await mailboxes.open_mailbox(app, DOCTOR, DOCTOR)
    folder_id = int(inbox.rsplit("/", 1)[1])
    of = await webmail.open_folder(app, access, folder_id)
    [row] = await webmail.rows_by_uid(app, of, {int(uid.group(1))})
    assert row.flags & Flag.FLAGGED
    moved = await web.post(actions, {"action": "archiver", "uid": uid.group(1)})
    assert moved.status_code == 303
    assert "A classer" not in (await web.get(inbox)).text
    folders = {f.special_use: f for f, _ in await webmail.folders(app, box)}
    archive = f"/courrier/b/{box.id}/d/{folders[SpecialUse.ARCHIVE.value].id}"
    archived = await web.get(archive)
    assert "A classer" in archived.text
    archived_uid = re.search(r'name="uid" value="(\d+)"', archived.text)
    assert archived_uid
    await web.post(archive + "/actions", {"action": "supprimer", "uid": archived_uid.group(1)})
    trash = f"/courrier/b/{box.id}/d/{folders[SpecialUse.TRASH.value].id}"
    assert "A classer" in (await web.get(trash)).text


async def test_compose_send_reply_and_sent_copy(
    app: App, web: WebClient, people: People, new_client: Any
) -> None:
    await web.login(DOCTOR)
    inbox = await _inbox_url(web)
    box_path = inbox.rsplit("/d/", 1)[0]
    form = await web.get(box_path + "/ecrire")
    assert form.status_code == 200 and "Taille maximale du message" in form.text
    response = await web.http.post(
        box_path + "/envoyer",
        data={
            "csrf": web.csrf,
            "a": "secretariat@cabinet-a.test",
            "objet": "Ordonnance de M. Dupont",
            "corps": "Merci de préparer le dossier.",
        },
        files={"pieces": ("ordonnance.pdf", b"%PDF-1.4 ordonnance", "application/pdf")},
    )
    assert response.status_code == 303, response.text
    assert "/d/" in response.headers["location"]
    sent = await web.get(response.headers["location"])
    assert "Ordonnance de M. Dupont" in sent.text
    # The secretary finds it in her Inbox, with the attachment, and replies.
    async with web.http.__class__(
        transport=web.http._transport, base_url=str(web.http.base_url)
    ) as raw_client:
        other = WebClient(raw_client)
        await other.login("secretariat@cabinet-a.test")
        her_inbox = await _inbox_url(other)
        listing = await other.get(her_inbox)
        link = re.search(r'href="(/courrier/b/\d+/d/\d+/m/(\d+))"', listing.text)
        assert link and "Ordonnance de M. Dupont" in listing.text
        message = await other.get(link.group(1))
        assert "ordonnance.pdf" in message.text
        folder_id = link.group(1).split("/d/")[1].split("/")[0]
        reply_form = await other.get(
            her_inbox.rsplit("/d/", 1)[0] + f"/ecrire?repondre={folder_id}:{link.group(2)}"
        )
        assert "Re : Ordonnance de M. Dupont" in reply_form.text and DOCTOR in reply_form.text
    # Refusals come back on the form, in French, nothing sent.
    refused = await web.http.post(
        box_path + "/envoyer", data={"csrf": web.csrf, "a": "pas une adresse", "objet": "x"}
    )
    assert refused.status_code == 400 and "adresse invalide" in refused.text


async def test_delegation_follows_its_rights(app: App, web: WebClient, people: People) -> None:
    await deliver_local(app, plain("Pour le secretariat", 3), [DOCTOR])
    await mailboxes.delegate(app, DOCTOR, "secretariat@cabinet-a.test", can_send=False)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await web.login("secretariat@cabinet-a.test")
    home = await web.get(f"/courrier/b/{box.id}")
    assert home.status_code == 303
    listing = await web.get(home.headers["location"])
    assert "Pour le secretariat" in listing.text and "lecture seule" in listing.text
    assert "Marquer lu" not in listing.text  # read-only: no actions offered
    assert (await web.get(f"/courrier/b/{box.id}/ecrire")).status_code == 403
    await mailboxes.revoke_delegation(app, DOCTOR, "secretariat@cabinet-a.test")
    assert (await web.get(home.headers["location"])).status_code == 403


@pytest.mark.parametrize("suffix", ["", "/d/{f}", "/d/{f}/m/1", "/d/{f}/m/1/corps", "/ecrire"])
async def test_other_practice_and_expired_session_are_refused(
    app: App, web: WebClient, people: People, clock: Clock, suffix: str
) -> None:
    await deliver_local(app, plain("Confidentiel", 4), [DOCTOR])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    folders = await webmail.folders(app, box)
    path = f"/courrier/b/{box.id}" + suffix.format(f=folders[0][0].id)
    await web.login("dr.durand@cabinet-b.test")
    refused = await web.get(path)
    assert refused.status_code == 403 and "Confidentiel" not in refused.text
    clock.advance(hours=13)
    expired = await web.get(path)
    assert expired.status_code in (302, 303) and "/connexion" in expired.headers["location"]


async def test_drafts_saved_resumed_replaced_and_dropped_when_sent(
    app: App, web: WebClient, people: People
) -> None:
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    base = f"/courrier/b/{box.id}"
    await web.get(base + "/ecrire")
    fields = {"a": "secretariat@cabinet-a.test", "objet": "Brouillon CR", "corps": "Début"}
    saved = await web.post(base + "/brouillon", fields)
    assert saved.status_code == 303 and "?brouillon=" in saved.headers["location"]
    resumed = await web.get(saved.headers["location"])
    assert 'value="Brouillon CR"' in resumed.text and ">Début</textarea>" in resumed.text
    uid = saved.headers["location"].rsplit("=", 1)[1]
    again = await web.http.post(
        base + "/brouillon",
        data={**fields, "corps": "Suite", "brouillon": uid, "csrf": web.csrf},
        headers={"accept": "application/json"},
    )
    new_uid = again.json()["brouillon"]
    access = await mailboxes.open_mailbox(app, DOCTOR, DOCTOR)
    drafts = await webmail.special_folder(app, access, SpecialUse.DRAFTS)
    rows = await webmail.rows_by_uid(app, drafts, set(range(1, 20)))
    assert [r.uid for r in rows] == [new_uid] and rows[0].flags & Flag.DRAFT
    sent = await web.http.post(
        base + "/envoyer", data={**fields, "brouillon": str(new_uid), "csrf": web.csrf}
    )
    assert sent.status_code == 303
    assert await webmail.rows_by_uid(app, drafts, set(range(1, 20))) == []


async def test_a_two_megabyte_attachment_goes_through(
    app: App, web: WebClient, people: People
) -> None:
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await web.get(f"/courrier/b/{box.id}/ecrire")
    big = b"%PDF-1.4 " + bytes(range(256)) * 8192  # 2 MB
    response = await web.http.post(
        f"/courrier/b/{box.id}/envoyer",
        data={"csrf": web.csrf, "a": "secretariat@cabinet-a.test", "objet": "Imagerie"},
        files={"pieces": ("irm.pdf", big, "application/pdf")},
    )
    assert response.status_code == 303, response.text[:500]
    secretary = await mailboxes.get_mailbox(app, "secretariat@cabinet-a.test")
    assert secretary.used_bytes > len(big)


async def test_attached_mail_file_is_sent_intact(app: App, web: WebClient, people: People) -> None:
    """A file the browser calls message/rfc822 (or multipart/*) cannot be base64-encoded under
    that type (RFC 2046 §5): it goes as application/octet-stream, its bytes intact, as the
    REST API sends it (one compose)."""
    await web.login(DOCTOR)
    box_path = (await _inbox_url(web)).rsplit("/d/", 1)[0]
    letter = b"From: a@ailleurs.test\r\nSubject: courrier\r\n\r\nTexte du courrier.\r\n"
    response = await web.http.post(
        box_path + "/envoyer",
        data={"csrf": web.csrf, "a": SECRETARY, "objet": "Courrier joint", "corps": "Voir."},
        files={"pieces": ("courrier.eml", letter, "message/rfc822")},
    )
    assert response.status_code == 303, response.text
    access = await mailboxes.open_mailbox(app, SECRETARY, SECRETARY)
    inbox = await webmail.special_folder(app, access, SpecialUse.INBOX)
    [item] = (await webmail.list_messages(app, inbox)).items
    _row, raw = await webmail.message(app, inbox, item.uid)
    [part] = BytesParser(policy=default).parsebytes(raw).iter_attachments()
    assert part.get_filename() == "courrier.eml"
    assert (part.get_content_type(), part.get_content()) == ("application/octet-stream", letter)


async def test_a_return_under_retention_cannot_be_deleted(
    app: App, web: WebClient, people: People
) -> None:
    # Issue 15: to the Trash (inside its mailbox) yes; from the Trash, for good, not before
    # 90 days — the page says why and until when. An old one goes.
    from datetime import UTC, datetime, timedelta

    from caducee.domain.model import MailboxType
    from caducee.services.messages import store_message

    box = await mailboxes.add_mailbox(app, "tlt@cabinet-a.test", MailboxType.TLT, DOCTOR)
    now = datetime.now(UTC)
    await store_message(app, box.id, "INBOX", plain("ARL recent", 1), internal_date=now)
    old = now - timedelta(days=91)
    await store_message(app, box.id, "INBOX", plain("ARL ancien", 2), internal_date=old)
    await web.login(DOCTOR)
    folders = {f.special_use: f for f, _ in await webmail.folders(app, box)}
    inbox = f"/courrier/b/{box.id}/d/{folders[SpecialUse.INBOX.value].id}"
    trash = f"/courrier/b/{box.id}/d/{folders[SpecialUse.TRASH.value].id}"
    uids = re.findall(r'name="uid" value="(\d+)"', (await web.get(inbox)).text)
    moved = await web.post(inbox + "/actions", {"action": "supprimer", "uid": uids})
    assert moved.status_code == 303
    # MOVE keeps the order: in the Trash, the recent one is UID 1, the old one UID 2.
    assert "ARL recent" in (await web.get(trash)).text
    refused = await web.post(trash + "/actions", {"action": "supprimer", "uid": "1"})
    assert refused.status_code == 403
    assert "doivent être conservés 90 jours" in refused.text
    assert "suppression possible à partir du" in refused.text
    assert "ARL recent" in (await web.get(trash)).text
    gone = await web.post(trash + "/actions", {"action": "supprimer", "uid": "2"})
    assert gone.status_code == 303 and "ARL ancien" not in (await web.get(trash)).text
