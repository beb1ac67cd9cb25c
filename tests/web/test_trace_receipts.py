"""The sender's trace of a sent message (local delivery, queue, remote delivery) and read
receipts (RFC 8098): asked in compose, sent when first opened if the mailbox allows it, and
shown as « lu » in the sender's trace."""

from __future__ import annotations

import email
import email.policy
import re
from typing import Any

from caducee.app import App
from caducee.config import TransportRoute
from caducee.domain.model import SpecialUse
from caducee.flows.outbound import OutboundWorker
from caducee.services import mailboxes, mdn, webmail
from tests.interop.test_outbound import Peers, peers
from tests.web.conftest import People, WebClient

__all__ = ["peers"]
DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"


async def _send(web: WebClient, box_path: str, to: str, subject: str, receipt: bool) -> None:
    data = {"csrf": web.csrf, "a": to, "objet": subject, "corps": "Texte."}
    if receipt:
        data["accuse"] = "oui"
    response = await web.http.post(box_path + "/envoyer", data=data)
    assert response.status_code == 303, response.text


async def _sent_trace(app: App, web: WebClient, subject: str) -> str:
    box = await mailboxes.get_mailbox(app, DOCTOR)
    sent = {f.special_use: f for f, _ in await webmail.folders(app, box)}[SpecialUse.SENT.value]
    listing = await web.get(f"/courrier/b/{box.id}/d/{sent.id}")
    link = re.search(rf'href="([^"]+/m/\d+)">{re.escape(subject)}<', listing.text)
    assert link, listing.text
    page = await web.get(link.group(1))
    assert "Suivi de l'envoi" in page.text
    return (await web.get(link.group(1) + "/trace")).text


async def test_trace_of_local_and_remote_recipients(
    app: App, web: WebClient, people: People, peers: Peers
) -> None:
    peer = peers.start()
    app.settings.transport = {"partner.test": TransportRoute("127.0.0.1", peer.port, "none")}
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await _send(web, f"/courrier/b/{box.id}", f"{SECRETARY}, confrere@partner.test", "CR", False)
    trace = await _sent_trace(app, web, "CR")
    assert SECRETARY in trace and "confrere@partner.test" in trace
    assert "remis" in trace and "en attente d&#39;envoi" in trace
    assert (await OutboundWorker(app).run_once()).delivered == 1
    trace = await _sent_trace(app, web, "CR")
    assert trace.count("remis") >= 2 and len(peer.received) == 1


async def test_read_mdn_sent_when_allowed_and_shown_in_the_trace(
    app: App, web: WebClient, people: People, new_client: Any
) -> None:
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await _send(web, f"/courrier/b/{box.id}", SECRETARY, "Avec accuse", True)
    await _send(web, f"/courrier/b/{box.id}", SECRETARY, "Sans accuse", False)
    async with new_client() as raw:
        other = WebClient(raw)
        await other.login(SECRETARY)
        her_box = await mailboxes.get_mailbox(app, SECRETARY)
        inbox = {f.special_use: f for f, _ in await webmail.folders(app, her_box)}[
            SpecialUse.INBOX.value
        ]
        page = await other.get(f"/courrier/b/{her_box.id}/d/{inbox.id}")
        assert "non envoyés" in page.text
        await other.post(f"/courrier/b/{her_box.id}/reglages", {"accuses": "oui"})
        page = await other.get(f"/courrier/b/{her_box.id}/d/{inbox.id}")
        for subject in ("Avec accuse", "Sans accuse"):
            link = re.search(rf'href="([^"]+/m/\d+)">{subject}<', page.text)
            assert link
            assert (await other.get(link.group(1))).status_code == 200
            assert (await other.get(link.group(1))).status_code == 200  # opened twice: one MDN
    with_receipt = await _sent_trace(app, web, "Avec accuse")
    assert with_receipt.count("lu (accusé de lecture)") == 1
    assert "lu (accusé" not in await _sent_trace(app, web, "Sans accuse")
    # The MDN itself is in the doctor's Inbox, well formed (RFC 8098 §3).
    access = await mailboxes.open_mailbox(app, DOCTOR, DOCTOR)
    inbox = await webmail.special_folder(app, access, SpecialUse.INBOX)
    rows = await webmail.rows_by_uid(app, inbox, set(range(1, 10)))
    assert len(rows) == 1
    _row, raw = await webmail.message(app, inbox, rows[0].uid)
    report = email.message_from_bytes(raw, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "disposition-notification"
    assert b"Disposition: automatic-action/MDN-sent-automatically; displayed" in raw
    assert mdn.requested_by(raw) is None  # never a receipt for a receipt
