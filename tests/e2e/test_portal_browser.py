"""The patient portal in Debian's Chromium against a real ``caducee serve``: the patient opens
the link, asks for a code (the development SMS provider's outbox receives it), enters it,
reads, downloads the attachment, replies with a file → the reply is in the practitioner's
Inbox; five wrong codes lock a link; a revoked link shows a clear page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

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
