"""The patient portal in Debian's Chromium against a real ``caducee serve``: the patient opens
the link, asks for a code (the development SMS provider's outbox receives it), enters it,
reads, downloads the attachment, replies with a file → the reply is in the practitioner's
Inbox; five wrong codes lock a link; a revoked link shows a clear page."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import Role
from caducee.health import pickup
from caducee.health.sms_providers import outbox_path
from caducee.services import accounts, mailboxes, maildrop
from tests.e2e.conftest import CHROMIUM, DOMAIN, Node
from tests.e2e.test_browser import in_thread, new_context
from tests.health.pickups import health_message

pytestmark = pytest.mark.e2e
DOCTOR = f"dr.lefevre@{DOMAIN}"
CODE = re.compile(r"est (\d{6})\.")


@pytest.fixture
def sms_file(settings: Settings) -> Settings:
    """Before the node starts: the development SMS provider (an outbox file)."""
    settings.deployment = "development"
    settings.sms_provider = "fichier"
    return settings


def _deposit(node: Node, n: int, *, with_doctor: bool = False) -> str:
    async def go() -> str:
        async with open_app(node.settings) as app:
            if with_doctor:
                await accounts.add_account(
                    app,
                    accounts.NewAccount(
                        login=DOCTOR,
                        first_name="Jeanne",
                        last_name="Lefèvre",
                        role=Role.PRATICIEN,
                        password="Correct-Horse-42-Battery",
                    ),
                )
            box = await mailboxes.get_mailbox(app, DOCTOR)
            made = await pickup.create_pickup(
                app,
                practice_id=box.practice_id,
                sender_mailbox_id=box.id,
                sender_address=DOCTOR,
                patient_email=f"patient{n}@patient-mail.test",
                patient_mobile=f"+336123456{n:02d}",
                raw_message=health_message(f"<e2e-{n}@{DOMAIN}>"),
            )
            return made.link.split("/portail/")[1]

    return in_thread(go())


def _last_code(settings: Settings) -> str:
    line = outbox_path(settings).read_text("utf-8").splitlines()[-1]
    found = CODE.search(json.loads(line)["text"])
    assert found
    return found.group(1)


def _inbox(node: Node) -> list[bytes]:
    async def go() -> list[bytes]:
        async with open_app(node.settings) as app:
            drop = await maildrop.open_maildrop(app, DOCTOR, "test")
            return [await maildrop.retrieve(app, drop, m) for m in drop.messages]

    return in_thread(go())


@pytest.fixture
def browser(sms_file: Settings, node: Node) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=node.chromium_args
        )
        try:
            yield launched
        finally:
            launched.close()


def test_patient_picks_up_and_replies(browser: Browser, node: Node, tmp_path: Path) -> None:
    token = _deposit(node, 1, with_doctor=True)
    page = new_context(browser, node).new_page()
    page.goto(f"/portail/{token}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Un message sécurisé vous attend")
    page.get_by_role("button", name="Recevoir un code par SMS").click()
    page.get_by_label("Code à 6 chiffres").fill(_last_code(node.settings))
    page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Vos résultats")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="bilan.pdf").click()
    saved = tmp_path / "bilan.pdf"
    downloading.value.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF")
    scan = tmp_path / "ordonnance.pdf"
    scan.write_bytes(b"%PDF-1.7 ordonnance scannee")
    page.get_by_label("Votre réponse").fill("Merci docteur, voici l'ordonnance.")
    page.get_by_label("Fichiers (PDF, JPEG, PNG ou texte)").set_input_files(str(scan))
    page.get_by_role("button", name="Envoyer la réponse").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Réponse envoyée")
    # The notice to the patient's (unreachable) domain may already have bounced: only the
    # patient's reply is looked at.
    [reply] = [m for m in _inbox(node) if b"MAILER-DAEMON@" not in m.split(b"\r\n\r\n")[0]]
    assert b"From: patient1@patient-mail.test" in reply and b"ordonnance.pdf" in reply


def test_five_wrong_codes_lock_and_revoked_link_is_clear(browser: Browser, node: Node) -> None:
    token = _deposit(node, 2, with_doctor=True)
    page = new_context(browser, node).new_page()
    page.goto(f"/portail/{token}")
    page.get_by_role("button", name="Recevoir un code par SMS").click()
    wrong = f"{(int(_last_code(node.settings)) + 1) % 1_000_000:06d}"
    for _ in range(5):
        page.get_by_label("Code à 6 chiffres").fill(wrong)
        page.get_by_role("button", name="Valider").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Lien verrouillé")
    other = _deposit(node, 3)

    async def revoke() -> None:
        async with open_app(node.settings) as app:
            made = (await pickup.list_pickups(app))[-1]  # the last deposited: ``other``
            await pickup.revoke(app, made.id, made.sender_mailbox_id, actor="dr", source="test")

    in_thread(revoke())
    page.goto(f"/portail/{other}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Message retiré")


def _verified_patient(node: Node) -> str:
    """The doctor (with a mailbox) and a patient whose address is verified; the patient's
    address."""
    from caducee.health import patients

    async def go() -> str:
        async with open_app(node.settings) as app:
            await accounts.add_account(
                app,
                accounts.NewAccount(
                    login=DOCTOR, first_name="Jeanne", last_name="Lefèvre",
                    role=Role.PRATICIEN, password="Correct-Horse-42-Battery",
                ),
            )  # fmt: skip
            box = await mailboxes.get_mailbox(app, DOCTOR)
            patient = await patients.add_patient(
                app,
                box.practice_id,
                patients.PatientData(
                    "Roux", "Paul", "14/07/1985", "paul.roux@patient-mail.test", "06 12 34 56 78"
                ),
                actor="test",
                source="test",
            )
            link = await patients.send_verification(
                app, box.practice_id, patient.id, actor="test", source="test"
            )
            await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="test")
            return patient.data.email

    return in_thread(go())


class _Sink:
    """The patient's mail provider: a real SMTP server receiving what we send them."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def patient_provider(settings: Settings) -> Iterator[_Sink]:
    """Before the node starts: mail for patient-mail.test goes to a local SMTP server."""
    from aiosmtpd.controller import Controller

    from caducee.config import TransportRoute
    from tests.pgcluster import free_port

    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.transport["patient-mail.test"] = TransportRoute("127.0.0.1", port, "none")
    try:
        yield sink
    finally:
        controller.stop()


def _notice_link(sink: _Sink) -> str:
    for _ in range(100):
        for raw in reversed(sink.messages):
            found = re.search(rb"/portail/[A-Za-z0-9_-]{40,}", raw.replace(b"=\r\n", b""))
            if found:
                return found.group(0).decode()
        time.sleep(0.1)
    raise AssertionError("no portal notice received")


def test_practitioner_writes_in_the_webmail_and_the_patient_picks_up(
    patient_provider: _Sink, browser: Browser, node: Node, tmp_path: Path
) -> None:
    from tests.e2e.test_browser import enrol_totp_at_first_login, log_in_password

    patient = _verified_patient(node)
    doctor = new_context(browser, node).new_page()
    log_in_password(doctor, DOCTOR, "Correct-Horse-42-Battery")
    enrol_totp_at_first_login(doctor)
    doctor.goto("/courrier")
    doctor.click("text=Nouveau message")
    doctor.fill("#a", patient)
    doctor.fill("#objet", "Vos résultats de laboratoire")
    doctor.fill("#corps", "Bonjour, vos résultats sont joints ; tout est normal.")
    report = tmp_path / "resultats.pdf"
    report.write_bytes(b"%PDF-1.4 resultats normaux")
    doctor.set_input_files("#pieces", str(report))
    doctor.click("form.compose button[type=submit]")
    expect(doctor.locator(".notice")).to_have_text("Message envoyé.")

    portal = new_context(browser, node).new_page()
    portal.goto(_notice_link(patient_provider))
    expect(portal.get_by_role("heading", level=1)).to_have_text("Un message sécurisé vous attend")
    expect(portal.locator("main")).not_to_contain_text("résultats sont joints")  # no content yet
    portal.get_by_role("button", name="Recevoir un code par SMS").click()
    portal.get_by_label("Code à 6 chiffres").fill(_last_code(node.settings))
    portal.get_by_role("button", name="Valider").click()
    expect(portal.get_by_role("heading", level=1)).to_contain_text("Vos résultats de laboratoire")
    expect(portal.frame_locator("iframe.mail-body").locator("body")).to_contain_text(
        "tout est normal"
    )
    with portal.expect_download() as downloading:
        portal.get_by_role("link", name="resultats.pdf").click()
    assert downloading.value.suggested_filename == "resultats.pdf"
    portal.get_by_label("Votre réponse").fill("Merci docteur.")
    portal.get_by_role("button", name="Envoyer la réponse").click()
    expect(portal.get_by_role("heading", level=1)).to_have_text("Réponse envoyée")
    replies = [m for m in _inbox(node) if b"Merci docteur." in m]
    assert (
        len(replies) == 1 and f"From: <{patient}>".encode() in replies[0]
    ) or patient.encode() in replies[0]
