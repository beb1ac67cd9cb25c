"""The antivirus rule with a real clamd (signatures written by the test): infected mail refused
at the MX, at submission (SMTP, webmail, API) and from the portal, with nothing stored and the
signature audited; a body, an attachment, a ZIP member, a nested message and a known file are
all found; clamd down or slow → temporary failure (or, if so configured, accepted and
audited, never silently); encrypted télétransmission lots pass. Both backends."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.errors import ScanUnavailable, VirusFound
from caducee.flows import inbound, portal_reply, submission
from caducee.health import pickup
from caducee.services import audit, mailboxes, practices, queue
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from tests.clamd import (
    FILE_SIGNATURE,
    HASHED_FILE,
    MARKER,
    MARKER_SIGNATURE,
    Clamd,
)
from tests.flows.test_inbound import inbox_rows
from tests.health import pickups
from tests.services.helpers import person, practice

DOCTOR = "dr@cabinet.test"
OUTSIDE = ClientInfo("192.0.2.10", "mx.ailleurs.test")


@pytest.fixture
async def ready(app: App, clamd_server: Clamd) -> App:
    app.settings.antivirus_clamd = clamd_server.address
    await practice(app)
    await person(app, DOCTOR)
    return app


def mail(
    attachment: tuple[str, str, bytes] | None = None,
    body: str = "Bonjour.",
    sender: str = "labo@ailleurs.test",
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = DOCTOR
    message["Subject"] = "Résultats"
    message["Message-ID"] = "<av-1@ailleurs.test>"
    message.set_content(body)
    if attachment is not None:
        name, kind, data = attachment
        maintype, _, subtype = kind.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def nested() -> bytes:
    inner = mail(("facture.pdf", "application/pdf", b"%PDF-1.4 " + MARKER))
    outer = EmailMessage(policy=SMTP)
    outer["From"] = "relais@ailleurs.test"
    outer["To"] = DOCTOR
    outer["Subject"] = "Tr: Résultats"
    outer.set_content("Message transféré.")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")
    return outer.as_bytes()


async def _receive(app: App, raw: bytes, to: str = DOCTOR) -> None:
    await inbound.receive(
        app, Envelope("labo@ailleurs.test", (EnvelopeRecipient(to),)), raw, OUTSIDE
    )


async def _audited(app: App, action: str) -> list[dict[str, object]]:
    return [json.loads(r.details) async for r in audit.iter_records(app.db) if r.action == action]


async def test_clean_mail_is_delivered(ready: App) -> None:
    await _receive(ready, mail(("cr.pdf", "application/pdf", b"%PDF-1.4 sain")))
    assert len(await inbox_rows(ready)) == 1


@pytest.mark.parametrize(
    ("case", "signature"),
    [
        ("body", MARKER_SIGNATURE),
        ("attachment", MARKER_SIGNATURE),
        ("zip", MARKER_SIGNATURE),
        ("nested", MARKER_SIGNATURE),
        ("known-file", FILE_SIGNATURE),
    ],
)
async def test_infected_mail_is_refused_at_the_mx(ready: App, case: str, signature: str) -> None:
    raw = {
        "body": lambda: mail(body="texte " + MARKER.decode()),
        "attachment": lambda: mail(("doc.pdf", "application/pdf", b"%PDF-1.4 " + MARKER)),
        "zip": lambda: mail(("docs.zip", "application/zip", zipped("doc.exe", MARKER * 3))),
        "nested": nested,
        "known-file": lambda: mail(("ordonnance.pdf", "application/pdf", HASHED_FILE)),
    }[case]()
    with pytest.raises(VirusFound) as refused:
        await _receive(ready, raw)
    assert refused.value.signature == signature
    assert signature in refused.value.fr and "Rien n'a été enregistré" in refused.value.fr
    assert await inbox_rows(ready) == []
    (event,) = await _audited(ready, "antivirus.infected")
    assert event["signature"] == signature and event["door"] == "mx"
    assert MARKER.decode() not in str(event)


async def test_submission_refuses_infected_mail(ready: App) -> None:
    raw = mail(("doc.pdf", "application/pdf", b"%PDF-1.4 " + MARKER), sender=DOCTOR)
    with pytest.raises(VirusFound):
        await submission.submit(
            ready,
            DOCTOR,
            Envelope(DOCTOR, (EnvelopeRecipient("confrere@ailleurs.test"),)),
            raw,
            ClientInfo("127.0.0.1", login=DOCTOR),
        )
    assert await queue.list_queue(ready) == [] and await inbox_rows(ready) == []
    (event,) = await _audited(ready, "antivirus.infected")
    assert event["door"] == "submission"


async def test_clamd_down_tempfails_or_accepts_audited(ready: App, tmp_path: Path) -> None:
    ready.settings.antivirus_clamd = f"unix:{tmp_path / 'absent.sock'}"
    with pytest.raises(ScanUnavailable, match="réessayez"):
        await _receive(ready, mail())
    assert await inbox_rows(ready) == []
    ready.settings.antivirus_on_unavailable = "accept"
    await _receive(ready, mail())
    assert len(await inbox_rows(ready)) == 1
    (event,) = await _audited(ready, "antivirus.unscanned")
    assert event["door"] == "mx" and "clamd" in str(event["reason"])


async def test_slow_clamd_tempfails(ready: App, tmp_path: Path) -> None:
    """clamd that accepts the stream and never answers: the timeout ends the wait."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    path = tmp_path / "slow.sock"
    server = await asyncio.start_unix_server(silent, path=str(path))
    ready.settings.antivirus_clamd = f"unix:{path}"
    ready.settings.antivirus_timeout_seconds = 0.5
    try:
        with pytest.raises(ScanUnavailable):
            await _receive(ready, mail())
    finally:
        server.close()
        for writer in held:
            writer.close()
    assert await inbox_rows(ready) == []


async def test_encrypted_teletransmission_passes_even_with_clamd_down(
    ready: App, tmp_path: Path
) -> None:
    tlt = "tlt.dr@cabinet.test"
    await mailboxes.add_mailbox(ready, tlt, MailboxType.TLT, DOCTOR)
    ready.settings.antivirus_clamd = f"unix:{tmp_path / 'absent.sock'}"
    enveloped = (
        f"From: arl@cpam.rss.fr\r\nTo: {tlt}\r\nSubject: ARL\r\nMIME-Version: 1.0\r\n"
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(b'chiffre' * 40).decode()}\r\n"
    ).encode()
    await _receive(ready, enveloped, tlt)
    assert len(await inbox_rows(ready)) == 1
    with pytest.raises(ScanUnavailable):  # a clear one is scanned like any other
        await _receive(ready, mail(), tlt)


async def test_portal_reply_with_an_infected_file_is_refused(ready: App) -> None:
    _account, mailbox = await person(ready, pickups.DOCTOR)
    cab = pickups.Cabinet(await practices.practice_of_domain(ready, "cabinet.test"), mailbox)
    found = await pickups.deposit(ready, cab)
    before = await pickups.inbox(ready, pickups.DOCTOR)
    infected = pickup.check_reply_file("scan.pdf", b"%PDF-1.4 " + MARKER)
    with pytest.raises(VirusFound):
        await portal_reply.reply(ready, found, "Voici le scan", [infected], source="192.0.2.7")
    assert await pickups.inbox(ready, pickups.DOCTOR) == before
    (event,) = await _audited(ready, "antivirus.infected")
    assert event["door"] == "portal"
    clean = pickup.check_reply_file("scan.pdf", b"%PDF-1.4 sain")
    await portal_reply.reply(ready, found, "Voici le scan", [clean], source="192.0.2.7")
    assert any(b"Voici le scan" in raw for raw in await pickups.inbox(ready, pickups.DOCTOR))
