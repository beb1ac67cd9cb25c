"""A big message's CPU work — its protected PDF for a patient, its sensitive-data scan — runs in
a worker process (``services.cpu_pool``), not on the event loop nor in one of its threads
(issue 17): while it works, the node's other doors answer; and it gives what the same work
gave in a thread.

No test here reads a clock: the work is held in its worker process at a gate until the other
door has answered."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import pikepdf
import pytest

from caducee.app import App
from caducee.health import dlp, patient_delivery
from caducee.services import cpu_pool, queue
from caducee.tls import create_dev_ca
from tests.health.pickups import DOCTOR, MARKER, PATIENT, Cabinet
from tests.health.test_patients import INS, cab, sms_sent, submit_to, verified
from tests.process_gate import ProcessGate
from tests.protocols.smtp.conftest import SmtpClient, limits_for_tests, port_of, start_listeners

__all__ = ["cab"]  # the fixture

#: An attachment big enough for a worker process (cpu_pool.PROCESS_THRESHOLD).
SCAN = bytes(range(256)) * (cpu_pool.PROCESS_THRESHOLD // 128)


def big_message(to: str, body: str) -> bytes:
    message = EmailMessage()
    message["From"] = DOCTOR
    message["To"] = to
    message["Subject"] = "Compte rendu"
    message["Message-ID"] = "<gros-1@cabinet.test>"
    message.set_content(body)
    message.add_attachment(
        SCAN, maintype="application", subtype="octet-stream", filename="scan.bin"
    )
    raw = message.as_bytes()
    assert len(raw) >= cpu_pool.PROCESS_THRESHOLD
    return raw


@pytest.fixture
async def mx(app: App) -> AsyncIterator[SmtpClient]:
    """Another door of the same node: an SMTP session on the MX."""
    create_dev_ca(app.settings.tls_dir, app.settings.hostname)  # STARTTLS is offered
    listeners = await start_listeners(app, limits_for_tests(), ("smtp",))
    try:
        client = await SmtpClient.connect(port_of(listeners["smtp"]))
        assert (await client.reply())[0].startswith("220 ")
        assert (await client.command("EHLO client.test"))[0].startswith("250")
        yield client
        await client.close()
    finally:
        for listener in listeners.values():
            await listener.stop(1)


async def held_while_other_door_answers(
    gate: ProcessGate, sending: asyncio.Task[None], mx: SmtpClient
) -> None:
    try:
        pid = await asyncio.to_thread(gate.wait_entered)
        assert pid != os.getpid()  # a worker process, not the node's
        assert (await mx.code("NOOP")).startswith("250")  # answered while the work is held
        assert not sending.done()
    finally:
        gate.open()
    await asyncio.wait_for(sending, 60)


async def test_a_big_message_to_a_pdf_patient_is_protected_in_a_worker_process(
    app: App, cab: Cabinet, mx: SmtpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    await verified(app, cab, delivery_mode="pdf")
    gate = ProcessGate(patient_delivery.protected_notice, tmp_path)
    monkeypatch.setattr(patient_delivery, "protected_notice", gate)
    raw = big_message(PATIENT, f"Bonjour, voici vos résultats : {MARKER}.")
    sending = asyncio.create_task(submit_to(app, PATIENT, raw))
    await held_while_other_door_answers(gate, sending, mx)
    # what the worker made: the notice, the PDF opened by the password sent by SMS only
    [entry] = [e for e in await queue.list_queue(app) if e.address == PATIENT][-1:]
    notice = BytesParser(policy=default).parsebytes(await queue.read_content(app, entry))
    assert notice["Message-ID"] == "<gros-1@cabinet.test>"
    [attachment] = list(notice.iter_attachments())  # type: ignore[attr-defined]
    data = attachment.get_payload(decode=True)
    assert MARKER.encode() not in data
    [sms] = sms_sent(app)
    with pikepdf.open(io.BytesIO(data), password=sms["text"].rsplit(" ", 1)[1]) as pdf:
        assert pdf.attachments["scan.bin"].get_file().read_bytes() == SCAN


async def test_a_big_message_is_scanned_for_sensitive_data_in_a_worker_process(
    app: App, cab: Cabinet, mx: SmtpClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gate = ProcessGate(dlp.scan_message, tmp_path)
    monkeypatch.setattr(dlp, "scan_message", gate)
    outside = "confrere@ailleurs.test"
    raw = big_message(outside, f"Patient NIR {INS[:13]} {INS[13:]}, né le 14/07/1985.")
    sending = asyncio.create_task(submit_to(app, outside, raw))
    await held_while_other_door_answers(gate, sending, mx)
    [entry] = await queue.list_queue(app)
    header = BytesParser(policy=default).parsebytes(await queue.read_content(app, entry))
    # the same verdict as a small message's (tests/health/test_patients.py): kinds, no value
    assert header["X-Caducee-DLP"].startswith("avertissement;")
    assert "nir=1" in header["X-Caducee-DLP"] and INS[:13] not in header["X-Caducee-DLP"]
