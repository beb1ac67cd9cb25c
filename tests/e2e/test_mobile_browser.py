"""The web pages for everyone, in Debian's Chromium against a real ``caducee serve``.

1. A phone at 360 × 800: each main page (login, home, folder, message, compose, address books,
   patients and a patient's record, télétransmission, the account's pages, the admin home and
   every admin page, the patient portal's pages) fits the screen: nothing scrolls sideways
   (``document.documentElement.scrollWidth <= 360``); nor at 1280 px on a desktop.
2. axe-core (``axe-playwright-python``) finds no WCAG 2.1 A/AA violation (tags wcag2a, wcag2aa,
   wcag21a, wcag21aa; no rule disabled) on those pages, on the phone and on the desktop.
3. The keyboard alone logs in, writes and sends a message (Tab, typing and Enter; no mouse), and
   the focused control is visibly outlined.

Writes the small screenshots of docs/screenshots/ (``mobile-*.png``, ``desktop-*.png``).

axe's script is injected by ``page.evaluate`` (DevTools' Runtime.evaluate), which the page's
Content-Security-Policy does not govern: the pages keep their real CSP (no ``bypass_csp``), so
what axe checks is what a user gets (the test asserts the CSP is there).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import MailboxType, Role
from caducee.health import patients, pickup
from caducee.health.sms_providers import outbox_path
from caducee.services import accounts, mailboxes, maildrop
from caducee.services.delivery import deliver_local
from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD, CHROMIUM, DOMAIN, SCREENSHOTS, Node
from tests.e2e.test_browser import code_for, enrol_totp_at_first_login, in_thread, log_in_password
from tests.health.pickups import health_message

pytestmark = pytest.mark.e2e
PASSWORD = "Correct-Horse-42-Battery"
DOCTOR = f"dr.lefevre@{DOMAIN}"
COLLEAGUE = f"dr.bonnefoy-delacroix.secretariat-medical@{DOMAIN}"  # only named in headers
TLT = f"facturation-teletransmission@{DOMAIN}"
PHONE: ViewportSize = {"width": 360, "height": 800}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# The other pages of an account and of the admin console: the same checks, no screenshot.
ACCOUNT_PAGES = (
    "/compte",
    "/compte/absence",
    "/compte/securite",
    "/compte/applications",
    "/compte/api",
)
ADMIN_PAGES = (
    "/admin/cabinet",
    "/admin/comptes",
    "/admin/comptes/nouveau",
    "/admin/boites",
    "/admin/delegations",
    "/admin/journal",
    "/admin/file",
    "/admin/charte",
    "/admin/tri",
)
CODE = re.compile(r"est (\d{6})\.")
# Long sender names and subjects without spaces, as real mail has: they must wrap or ellipsize.
INBOX = [
    (
        "Service de cardiologie du Centre hospitalier universitaire "
        "<secretariat.cardiologie.consultations-externes@chu-exemple-regional.test>",
        "Compte rendu de consultation — M. Roux — échocardiographie transthoracique de contrôle",
    ),
    (
        "Laboratoire Biomed <resultats@labo-biomed.test>",
        "Résultats_Bilan_sanguin_NFS_CRP_ionogramme_Mme_Garnier_2026-12-07.pdf",
    ),
    ("Dr Paul Girard <p.girard@cabinet-girard.test>", "Demande d'avis : plaie chronique"),
]


@pytest.fixture
def sms_file(settings: Settings) -> Iterator[Settings]:
    """Before the node starts: the development SMS provider (an outbox file), and the patients'
    mail provider, a real local SMTP server (no bounce of the portal's notice lands in the
    doctor's Inbox)."""
    from aiosmtpd.controller import Controller

    from caducee.config import TransportRoute
    from tests.e2e.test_portal_browser import _Sink
    from tests.pgcluster import free_port

    settings.deployment = "development"
    settings.sms_provider = "fichier"
    port = free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.transport["patient-mail.test"] = TransportRoute("127.0.0.1", port, "none")
    try:
        yield settings
    finally:
        controller.stop()


def _seed(node: Node) -> str:
    """The doctor's mailbox with mail, a télétransmission mailbox, a verified patient and a
    portal pickup for them; the pickup's token."""

    async def go() -> str:
        async with open_app(node.settings) as app:
            await accounts.add_account(
                app,
                accounts.NewAccount(
                    login=DOCTOR,
                    first_name="Jeanne",
                    last_name="Lefèvre",
                    role=Role.PRATICIEN,
                    password=PASSWORD,
                ),
            )
            # The practice's third and last mailbox: the billing software's (télétransmission).
            await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, DOCTOR)
            for n, (sender, subject) in enumerate(INBOX):
                raw = (
                    f"From: {sender}\r\nTo: {DOCTOR}, {COLLEAGUE}\r\nSubject: {subject}\r\n"
                    f"Message-ID: <mobile-{n}@exemple.test>\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
                    "Bonjour, veuillez trouver les éléments du dossier : "
                    "https://dossier.chu-exemple-regional.test/consultations/2026/12/07/"
                    "roux-paul-echocardiographie-transthoracique-compte-rendu-definitif\r\n"
                ).encode()
                await deliver_local(app, raw, [DOCTOR])
            box = await mailboxes.get_mailbox(app, DOCTOR)
            patient = await patients.add_patient(
                app,
                box.practice_id,
                patients.PatientData(
                    "Roux-Lambert de la Fontaine",
                    "Paul-Emmanuel",
                    "14/07/1985",
                    "paul-emmanuel.roux-lambert-de-la-fontaine@patient-mail.test",
                    "06 12 34 56 78",
                ),
                actor="test",
                source="test",
            )
            link = await patients.send_verification(
                app, box.practice_id, patient.id, actor="test", source="test"
            )
            await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="test")
            made = await pickup.create_pickup(
                app,
                practice_id=box.practice_id,
                sender_mailbox_id=box.id,
                sender_address=DOCTOR,
                patient_email=patient.data.email,
                patient_mobile="+33612345678",
                raw_message=health_message(f"<mobile-pickup@{DOMAIN}>"),
            )
            return made.link.split("/portail/")[1]

    return in_thread(go())


def _last_code(settings: Settings) -> str:
    line = outbox_path(settings).read_text("utf-8").splitlines()[-1]
    found = CODE.search(json.loads(line)["text"])
    assert found
    return found.group(1)


def _received(node: Node, login: str, subject: str) -> list[EmailMessage]:
    """The messages of ``login``'s Inbox whose subject is ``subject``."""

    async def go() -> list[bytes]:
        async with open_app(node.settings) as app:
            drop = await maildrop.open_maildrop(app, login, "test")
            return [await maildrop.retrieve(app, drop, m) for m in drop.messages]

    parsed = [
        message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
        for raw in in_thread(go())
    ]
    return [m for m in parsed if m["Subject"] == subject]


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


def _context(browser: Browser, node: Node) -> BrowserContext:
    context = browser.new_context(
        base_url=node.base_url, locale="fr-FR", viewport=PHONE, device_scale_factor=1
    )
    context.set_default_timeout(15_000)
    return context


def _save_png(page: Page, name: str) -> None:
    """The visible screen, as a small palette PNG (the docs' screenshots stay light)."""
    shot = Image.open(io.BytesIO(page.screenshot()))
    small = shot.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    small.save(SCREENSHOTS / f"{name}.png", optimize=True)


AXE = Axe()  # reads axe-core's script once


def _axe_violations(page: Page) -> list[str]:
    results = AXE.run(page, options={"runOnly": {"type": "tag", "values": WCAG}})
    return [
        f"{v['id']} ({v['impact']}): "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in results.response["violations"]
    ]


# The elements that stick out of the screen, outside any box that scrolls or clips them: the
# failure message names the culprits.
WIDE_ELEMENTS = """(limit) => {
    const clipped = (e) => {
        for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
            if (getComputedStyle(p).overflowX !== 'visible') return true;
        }
        return false;
    };
    return [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > limit + 1 && !clipped(e))
        .slice(0, 8).map(e => e.tagName + '.' + e.className + '#' + e.id);
}"""


class Survey:
    """What each page shows: its width on the phone, axe's violations on the phone and on a
    desktop; the screenshots of both."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, page: Page, name: str, *, shot: str | None = None) -> None:
        page.wait_for_load_state("load")
        for kind, viewport in (("mobile", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(viewport)
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > viewport["width"]:
                wide = page.evaluate(WIDE_ELEMENTS, viewport["width"])
                self.problems.append(f"{name}: {width} px wide at {viewport['width']} ({wide})")
            for violation in _axe_violations(page):
                self.problems.append(f"{name} at {viewport['width']} px: {violation}")
            if shot:
                _save_png(page, f"{kind}-{shot}")
        page.set_viewport_size(PHONE)


def _log_in(page: Page, login: str, password: str) -> None:
    log_in_password(page, login, password)
    enrol_totp_at_first_login(page)


def test_main_pages_fit_a_phone_and_pass_axe(browser: Browser, node: Node) -> None:
    token = _seed(node)
    survey = Survey()
    page = _context(browser, node).new_page()
    response = page.goto("/connexion")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("h1")).to_have_text("Connexion")
    survey.check(page, "login", shot="login")
    _log_in(page, DOCTOR, PASSWORD)
    survey.check(page, "home")
    page.goto("/courrier")
    expect(page.locator("table.mail-list tbody tr")).to_have_count(len(INBOX))
    survey.check(page, "folder", shot="folder")
    page.click(f"text={INBOX[0][1]}")
    expect(page.locator("h1")).to_have_text(INBOX[0][1])
    survey.check(page, "message", shot="message")
    page.goto("/courrier")
    page.click("text=Nouveau message")
    expect(page.locator("form.compose")).to_be_visible()
    survey.check(page, "compose", shot="compose")
    page.goto("/patients")
    survey.check(page, "patients", shot="patients")
    page.click("#patients a")
    expect(page.locator("h1")).to_contain_text("ROUX-LAMBERT")
    survey.check(page, "patient record")
    page.goto("/courrier")
    page.click("text=Carnets d'adresses")
    survey.check(page, "address books")
    page.click("nav.mainnav >> text=Télétransmission")
    expect(page.locator("h1")).to_contain_text("Télétransmission")
    survey.check(page, "teletransmission")
    for path in ACCOUNT_PAGES:
        page.goto(path)
        survey.check(page, path)
    page.context.close()

    admin = _context(browser, node).new_page()
    _log_in(admin, ADMIN, ADMIN_PASSWORD)
    admin.goto("/admin")
    survey.check(admin, "admin home", shot="admin")
    for path in ADMIN_PAGES:
        admin.goto(path)
        survey.check(admin, path)
    admin.context.close()

    portal = _context(browser, node).new_page()
    portal.goto(f"/portail/{token}")
    expect(portal.get_by_role("heading", level=1)).to_have_text("Un message sécurisé vous attend")
    survey.check(portal, "portal landing", shot="portal")
    portal.get_by_role("button", name="Recevoir un code par SMS").click()
    expect(portal.get_by_label("Code à 6 chiffres")).to_be_visible()
    survey.check(portal, "portal code")
    portal.get_by_label("Code à 6 chiffres").fill(_last_code(node.settings))
    portal.get_by_role("button", name="Valider").click()
    expect(portal.get_by_role("heading", level=1)).to_contain_text("Vos résultats")
    survey.check(portal, "portal message", shot="portal-message")
    portal.get_by_label("Votre réponse").fill("Merci docteur.")
    portal.get_by_role("button", name="Envoyer la réponse").click()
    expect(portal.get_by_role("heading", level=1)).to_have_text("Réponse envoyée")
    survey.check(portal, "portal reply sent")
    portal.goto(f"/portail/{token}/charte")
    survey.check(portal, "portal charter")
    portal.context.close()
    assert survey.problems == [], "\n".join(survey.problems)


def _enrolled(node: Node, login: str) -> str:
    """``login`` with TOTP already enrolled (as after a first login); its secret."""
    from caducee.services import totp

    async def go() -> str:
        async with open_app(node.settings) as app:
            secret, _uri = await totp.begin_totp_enrolment(app, login, source="test")
            await totp.confirm_totp(app, login, code_for(secret), source="test")
            return secret

    return in_thread(go())


def _focus_ring(page: Page) -> str | None:
    """The focused element's description if its focus is not visibly outlined, else None."""
    result: str | None = page.evaluate(
        """() => {
            const e = document.activeElement;
            if (!e || e === document.body) return 'nothing focused';
            const s = getComputedStyle(e);
            const ring = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
            return ring ? null : e.outerHTML.slice(0, 120);
        }"""
    )
    return result


def _tab_to(page: Page, selector: str, unringed: list[str], limit: int = 60) -> int:
    """Press Tab until ``selector`` has the focus (each stop must show its focus ring); the
    number of presses."""
    for presses in range(limit):
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return presses
        page.keyboard.press("Tab")
        missing = _focus_ring(page)
        if missing:
            unringed.append(missing)
    raise AssertionError(f"{selector} not reached by {limit} presses of Tab")


def test_keyboard_alone_logs_in_writes_and_sends(browser: Browser, node: Node) -> None:
    _seed(node)
    secret = _enrolled(node, DOCTOR)
    page = _context(browser, node).new_page()
    page.set_viewport_size(DESKTOP)
    unringed: list[str] = []
    subject = "Avis demandé au clavier"

    page.goto("/connexion")
    _tab_to(page, "#identifiant", unringed)
    page.keyboard.type(DOCTOR)
    _tab_to(page, "#mot_de_passe", unringed)
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/connexion/verification$"))
    _tab_to(page, "#code", unringed)
    page.keyboard.type(code_for(secret, offset=30))  # the next step's code: never a replay
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/accueil$"))

    _tab_to(page, "nav.mainnav a[href='/courrier']", unringed)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text("Boîte de réception")
    # The first stop of a page is the skip link, shown when focused; it jumps over the menu.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.matches('a.skip')")
    shown = page.locator("a.skip").bounding_box()
    assert shown is not None and shown["x"] >= 0 and shown["y"] >= 0
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main#contenu') !== null")
    _tab_to(page, ".mail-side a.compose", unringed)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Nouveau message")
    _tab_to(page, "#a", unringed)
    page.keyboard.type(ADMIN)
    _tab_to(page, "#objet", unringed)
    page.keyboard.type(subject)
    _tab_to(page, "#corps", unringed)
    page.keyboard.type("Bonjour, pouvez-vous voir M. Roux cette semaine ? Merci.")
    _tab_to(page, "form.compose .mail-actions button:not(.secondary)", unringed)
    page.keyboard.press("Enter")
    expect(page.locator(".notice")).to_have_text("Message envoyé.")

    [received] = _received(node, ADMIN, subject)
    assert received["From"].addresses[0].addr_spec == DOCTOR
    body = received.get_body(("plain",))
    assert body is not None and "M. Roux cette semaine" in body.get_content()
    assert unringed == [], unringed
