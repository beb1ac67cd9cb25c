"""Mon espace santé: only the practitioner starts an exchange; FIN closes it."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.errors import PolicyRejected
from caducee.flows import submission
from caducee.health import mon_espace_sante
from caducee.services import trace
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from tests.health.pickups import DOCTOR, Cabinet, cabinet

PATIENT_MES = "185057800608491@patient.mssante.fr"


@pytest.fixture
async def cab(app: App) -> Cabinet:
    return await cabinet(app)


def reply(in_reply_to: str, subject: str = "Re: Résultats") -> bytes:
    return (
        f"From: <{PATIENT_MES}>\r\nTo: <{DOCTOR}>\r\nSubject: {subject}\r\n"
        f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n\r\nMerci.\r\n"
    ).encode()


async def send(app: App, message_id: str, *, fin: bool = False) -> None:
    extra = "X-MSS-MES: FIN\r\n" if fin else ""
    raw = (
        f"From: {DOCTOR}\r\nTo: {PATIENT_MES}\r\nSubject: {'[FIN] ' if fin else ''}Résultats\r\n"
        f"Message-ID: {message_id}\r\n{extra}\r\nVos résultats sont normaux.\r\n"
    ).encode()
    envelope = Envelope(DOCTOR, (EnvelopeRecipient(PATIENT_MES),))
    await submission.submit(app, DOCTOR, envelope, raw, ClientInfo("127.0.0.1", login=DOCTOR))


async def test_patient_may_only_reply_and_fin_closes(app: App, cab: Cabinet) -> None:
    with pytest.raises(PolicyRejected, match="seul le professionnel"):
        await mon_espace_sante.check_inbound(app, PATIENT_MES, reply("<inconnu@ailleurs.test>"))
    await send(app, "<mes-1@cabinet.test>")
    await mon_espace_sante.check_inbound(app, PATIENT_MES, reply("<mes-1@cabinet.test>"))
    # another patient cannot hijack the thread
    with pytest.raises(PolicyRejected, match="seul le professionnel"):
        await mon_espace_sante.check_inbound(
            app, "999@patient.mssante.fr", reply("<mes-1@cabinet.test>")
        )
    await send(app, "<mes-2@cabinet.test>", fin=True)
    events = [e.event for e in await trace.events(app, cab.mailbox.id, "<mes-2@cabinet.test>")]
    assert "closed" in events
    with pytest.raises(PolicyRejected, match="clos"):
        await mon_espace_sante.check_inbound(app, PATIENT_MES, reply("<mes-2@cabinet.test>"))
    # other senders are not concerned
    await mon_espace_sante.check_inbound(app, "labo@ailleurs.test", reply("<x@y.test>"))


def test_fin_is_read_from_the_header_or_the_subject() -> None:
    assert mon_espace_sante.closes_exchange(b"X-MSS-MES: FIN\r\nSubject: x\r\n\r\n.")
    assert mon_espace_sante.closes_exchange(b"Subject: [FIN] fin du suivi\r\n\r\n.")
    assert not mon_espace_sante.closes_exchange(b"Subject: Finances\r\n\r\n.")
