"""The webmail in Debian's Chromium: read a hostile HTML mail (no script runs, nothing remote
loads), compose and send with an attachment, read it in another account, reply, and a
secretary writing from the mailbox delegated to her. Writes docs/screenshots/webmail.png."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from caducee.app import open_app
from caducee.domain.model import Role
from caducee.services import accounts, mailboxes
from caducee.services.delivery import deliver_local
from tests.e2e.conftest import CHROMIUM, DOMAIN, SCREENSHOTS, Node
from tests.e2e.test_browser import (
    enrol_totp_at_first_login,
    in_thread,
    log_in_password,
    new_context,
)

pytestmark = pytest.mark.e2e
PASSWORD = "Correct-Horse-42-Battery"
DOCTOR = f"dr.lefevre@{DOMAIN}"
SECRETARY = f"accueil.claire@{DOMAIN}"
HOSTILE = (
    f"From: Laboratoire Biomed <resultats@labo-biomed.test>\r\nTo: {DOCTOR}\r\n"
    "Subject: =?utf-8?q?R=C3=A9sultats_HTML_pi=C3=A9g=C3=A9s?=\r\nMIME-Version: 1.0\r\n"
    "Message-ID: <hostile@labo-biomed.test>\r\n"
    "Content-Type: text/html; charset=utf-8\r\n\r\n"
    "<p>Résultats disponibles.</p>"
    "<script>parent.document.title='PWNED'</script>"
    '<img src="https://pixel.labo-biomed.test/p.gif" onerror="parent.document.title=\'PWNED\'">'
    '<a href="javascript:parent.document.title=\'PWNED\'" id="piege">voir</a>'
    '<iframe src="https://pixel.labo-biomed.test/"></iframe>\r\n'
)
INBOX = [
    ("Dr Anne Moreau <a.moreau@chu-exemple.test>", "Compte rendu d'hospitalisation — M. Roux"),
    ("Laboratoire Biomed <resultats@labo-biomed.test>", "Bilan sanguin de Mme Garnier"),
    ("Cabinet de radiologie <radio@imagerie.test>", "Échographie abdominale — rendez-vous"),
    ("Dr Paul Girard <p.girard@cabinet-girard.test>", "Demande d'avis : plaie chronique"),
    ("Pharmacie du Centre <contact@pharma-centre.test>", "Ordonnance à renouveler"),
]


def _seed(node: Node) -> None:
    async def go() -> None:
        async with open_app(node.settings) as app:
            for login, first, last, role in (
                (DOCTOR, "Jeanne", "Lefèvre", Role.PRATICIEN),
                (SECRETARY, "Claire", "Petit", Role.SECRETAIRE),
            ):
                await accounts.add_account(
                    app,
                    accounts.NewAccount(
                        login=login, first_name=first, last_name=last, role=role, password=PASSWORD
                    ),
                )
            await mailboxes.delegate(app, DOCTOR, SECRETARY, can_send=True)
            for n, (sender, subject) in enumerate(INBOX):
                raw = (
                    f"From: {sender}\r\nTo: {DOCTOR}\r\nSubject: {subject}\r\n"
                    f"Message-ID: <seed-{n}@exemple.test>\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                    "Bonjour, veuillez trouver les éléments du dossier. Bien cordialement.\r\n"
                ).encode()
                await deliver_local(app, raw, [DOCTOR])
            await deliver_local(app, HOSTILE.encode(), [DOCTOR])

    in_thread(go())


@pytest.fixture
def browser(node: Node) -> Iterator[Browser]:
    _seed(node)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=node.chromium_args
        )
        try:
            yield launched
        finally:
            launched.close()


def _watch(page: Page) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    remote: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_request(request: Request) -> None:
        if "labo-biomed.test" in request.url or "pixel" in request.url:
            remote.append(request.url)

    page.on("request", on_request)
    return errors, remote


def test_webmail_in_chromium(browser: Browser, node: Node, tmp_path: object) -> None:
    doctor = new_context(browser, node).new_page()
    errors, remote = _watch(doctor)
    log_in_password(doctor, DOCTOR, PASSWORD)
    enrol_totp_at_first_login(doctor)
    doctor.click("nav.mainnav >> text=Messagerie")
    expect(doctor.locator("h1")).to_contain_text("Boîte de réception")
    expect(doctor.locator("table.mail-list tbody tr")).to_have_count(len(INBOX) + 1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    doctor.screenshot(path=str(SCREENSHOTS / "webmail.png"), full_page=True)

    # 1. The hostile HTML mail: shown sanitised in the sandboxed frame; nothing runs or loads.
    doctor.click("text=Résultats HTML piégés")
    expect(doctor.locator(".notice")).to_contain_text("images distantes sont bloquées")
    frame = doctor.frame_locator("iframe.mail-body")
    expect(frame.locator("p")).to_contain_text("Résultats disponibles.")
    expect(frame.locator("script")).to_have_count(0)
    expect(frame.locator("iframe")).to_have_count(0)
    frame.locator("#piege").click() if frame.locator("#piege").count() else None
    doctor.wait_for_timeout(500)
    assert doctor.title() != "PWNED"
    assert remote == [], remote

    # 2. Compose to the secretary with an attachment.
    doctor.click("text=Nouveau message")
    doctor.fill("#a", SECRETARY)
    doctor.fill("#objet", "Dossier de M. Roux")
    doctor.fill("#corps", "Pouvez-vous préparer le courrier de sortie ?")
    pdf = node.settings.data_dir / "courrier.pdf"
    pdf.write_bytes(b"%PDF-1.4 courrier de sortie")
    doctor.set_input_files("#pieces", str(pdf))
    doctor.click("form.compose button[type=submit]")
    expect(doctor.locator(".notice")).to_have_text("Message envoyé.")
    expect(doctor.locator("table.mail-list")).to_contain_text("Dossier de M. Roux")

    # 3. The secretary reads it, downloads the attachment and replies.
    secretary = new_context(browser, node).new_page()
    s_errors, _ = _watch(secretary)
    log_in_password(secretary, SECRETARY, PASSWORD)
    enrol_totp_at_first_login(secretary)
    secretary.goto("/courrier")
    secretary.click("text=Dossier de M. Roux")
    expect(secretary.locator(".attachments")).to_contain_text("courrier.pdf")
    with secretary.expect_download() as download:
        secretary.click(".attachments a")
    assert download.value.suggested_filename == "courrier.pdf"
    secretary.click("text=Répondre")
    expect(secretary.locator("#objet")).to_have_value("Re : Dossier de M. Roux")
    secretary.fill("#corps", "C'est prêt, je vous l'envoie demain.")
    secretary.click("form.compose button[type=submit]")
    expect(secretary.locator(".notice")).to_have_text("Message envoyé.")

    # 4. The reply reaches the doctor, in the same conversation.
    doctor.goto("/courrier")
    doctor.click("text=Re : Dossier de M. Roux")
    expect(doctor.locator(".thread")).to_contain_text("Dossier de M. Roux")

    # 5. The secretary writes from the doctor's mailbox, delegated to her with send rights.
    secretary.goto("/courrier")
    secretary.click(f".boxes >> text={DOCTOR}")
    expect(secretary.locator(".mail-side")).to_contain_text("Boîte déléguée")
    secretary.click("text=Nouveau message")
    expect(secretary.locator("form.compose")).to_contain_text(DOCTOR)
    secretary.fill("#a", SECRETARY)
    secretary.fill("#objet", "Envoyé pour le Dr Lefèvre")
    secretary.click("form.compose button[type=submit]")
    expect(secretary.locator(".notice")).to_have_text("Message envoyé.")
    expect(secretary.locator("table.mail-list")).to_contain_text("Envoyé pour le Dr Lefèvre")

    # 6. The patient registry apart from the professional book, and the channel of each
    # recipient at a glance.
    doctor.click("nav.mainnav >> text=Patients")
    doctor.fill("#nom", "Garnier")
    doctor.fill("#prenom", "Lucie")
    doctor.fill("#naissance", "02/03/1990")
    doctor.fill("#adresse", "lucie.garnier@gmail.test")
    doctor.click("button:has-text('Enregistrer')")
    expect(doctor.locator("h1")).to_have_text("GARNIER Lucie")
    expect(doctor.locator("#verification")).to_contain_text("non vérifiée")
    doctor.goto("/courrier")
    doctor.click("text=Carnets d'adresses")
    expect(doctor.locator("#registre-patients")).to_contain_text("1 patient(s)")
    doctor.click("text=Nouveau message")
    doctor.fill("#carnet-patients", "garn")
    expect(doctor.locator("#liste-patients option")).to_have_count(1)
    doctor.fill("#carnet-pros", "garn")
    doctor.wait_for_timeout(300)
    expect(doctor.locator("#liste-pros option")).to_have_count(0)  # never in the other book
    doctor.fill("#carnet-patients", "lucie.garnier@gmail.test")
    expect(doctor.locator("#a")).to_have_value("lucie.garnier@gmail.test")
    doctor.fill("#cc", f"{SECRETARY}, inconnu@ailleurs.test")
    doctor.locator("#cc").dispatch_event("change")
    expect(doctor.locator("#canaux")).to_contain_text("Patient")
    expect(doctor.locator("#canaux")).to_contain_text("Interne au cabinet")
    expect(doctor.locator("#canaux")).to_contain_text("Externe — non sécurisé")

    assert errors == [] and s_errors == [], (errors, s_errors)
