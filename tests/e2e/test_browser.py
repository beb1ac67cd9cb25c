"""The web door in Debian's Chromium: TOTP login, the admin console (account, mailbox and its
limit, delegation), an app password used by a mail service, a WebAuthn key (Chromium's virtual
authenticator over CDP), and the screenshot of the admin console for the docs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import Account
from caducee.services import mailboxes
from caducee.services.auth import authenticate_mail
from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD, CHROMIUM, DOMAIN, SCREENSHOTS, Node

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.fixture
def browser(node: Node) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=node.chromium_args
        )
        try:
            yield launched
        finally:
            launched.close()


def new_context(browser: Browser, node: Node) -> BrowserContext:
    context = browser.new_context(
        base_url=node.base_url,
        ignore_https_errors=False,
        locale="fr-FR",
        viewport={"width": 1280, "height": 860},
    )
    context.set_default_timeout(15_000)
    return context


def log_in_password(page: Page, login: str, password: str) -> None:
    page.goto("/connexion")
    expect(page.locator("h1")).to_have_text("Connexion")
    page.fill("#identifiant", login)
    page.fill("#mot_de_passe", password)
    page.click("button[type=submit]")


def code_for(secret: str, offset: int = 0) -> str:
    return str(pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=offset)))


def enrol_totp_at_first_login(page: Page) -> str:
    """A new practice requires a second factor: the first login lands on the enrolment page,
    which shows the QR code; the account enrols TOTP and reaches its home. The secret."""
    expect(page).to_have_url(re.compile(r"/compte/securite/enrolement$"))
    expect(page.locator("h1")).to_have_text("Second facteur obligatoire")
    page.get_by_role("button", name="Utiliser une application d'authentification").click()
    expect(page.locator("img[alt^='QR code']")).to_be_visible()
    secret = page.get_attribute("#totp-secret", "data-secret")
    assert secret and re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.fill("#code", code_for(secret))
    page.click("button:has-text('Activer')")
    expect(page.locator("#recovery-codes code")).to_have_count(10)
    page.click("text=J'ai noté mes codes, continuer")
    expect(page.locator(".status.on").first).to_have_text("Activée")
    page.goto("/accueil")
    expect(page).to_have_url(re.compile(r"/accueil$"))
    return secret


def in_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop in a worker thread (Playwright's sync API keeps an event
    loop running in this one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def mail_login(settings: Settings, login: str, password: str, service: str) -> Account:
    async def check() -> Account:
        async with open_app(settings) as app:
            principal = await authenticate_mail(app, login, password, service, "127.0.0.1")  # type: ignore[arg-type]
            return principal.account

    return in_thread(check())


def delegations(settings: Settings) -> list[tuple[str, str, bool]]:
    async def read() -> list[tuple[str, str, bool]]:
        async with open_app(settings) as app:
            return [
                (d.mailbox_address, d.account_login, d.can_send)
                for d in await mailboxes.list_delegations(app)
            ]

    return in_thread(read())


def test_admin_console_in_chromium(browser: Browser, node: Node) -> None:
    context = new_context(browser, node)
    page = context.new_page()
    # Script errors and CSP violations ("Refused to ...") would show here; error pages
    # answered on purpose (400 limit error, 403) appear as "Failed to load resource".
    console_errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            console_errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))

    # 1. The practice requires a second factor (the default): the password opens only the
    # enrolment page, whose QR code enrols TOTP; nothing else is reachable before.
    log_in_password(page, ADMIN, ADMIN_PASSWORD)
    expect(page).to_have_url(re.compile(r"/compte/securite/enrolement$"))
    page.goto("/accueil")
    expect(page).to_have_url(re.compile(r"/compte/securite/enrolement$"))
    secret = enrol_totp_at_first_login(page)
    expect(page.locator("h1")).to_contain_text("Bonjour Alice")

    # 2. Log out, log in again with the TOTP code (the next step's code: never a replay).
    page.click("header button:has-text('Se déconnecter')")
    expect(page.locator(".notice")).to_have_text("Vous êtes déconnecté.")
    log_in_password(page, ADMIN, ADMIN_PASSWORD)
    expect(page).to_have_url(re.compile(r"/connexion/verification$"))
    page.fill("#code", code_for(secret, offset=30))
    page.click("form:has(input[value=totp]) button[type=submit]")
    expect(page).to_have_url(re.compile(r"/accueil$"))

    # 3. Admin console: create an account; the generated password is shown once.
    page.click("nav.mainnav >> text=Administration")
    expect(page.locator("h1")).to_have_text("Cabinet de test E2E")
    page.click("nav.subnav >> text=Comptes")
    page.click("text=Nouveau compte")
    page.fill("#identifiant", "secretariat")
    page.fill("#civilite", "Mme")
    page.fill("#prenom", "Claire")
    page.fill("#nom", "Petit")
    page.fill("#profession", "Secrétaire médicale")
    page.select_option("#role", "secretaire")
    page.click("button:has-text('Créer le compte')")
    expect(page.locator("h1")).to_have_text("Compte créé")
    new_password = page.inner_text("#new-password")
    assert len(new_password) >= 16

    # 4. Mailboxes: one more fits (limit 3), the next one is refused with the French message.
    page.click("nav.subnav >> text=Boîtes aux lettres")
    expect(page.locator("#mailbox-usage")).to_have_text("2 sur 3")
    page.fill("#identifiant", "accueil")
    page.select_option("#type", "ORG")
    page.select_option("#titulaire", label=f"Mme Claire Petit (secretariat@{DOMAIN})")
    page.fill("#quota_mo", "500")
    page.click("button:has-text('Créer la boîte')")
    expect(page.locator("#mailbox-usage")).to_have_text("3 sur 3")
    expect(page.locator("table")).to_contain_text(f"accueil@{DOMAIN}")
    page.fill("#identifiant", "de-trop")
    page.click("button:has-text('Créer la boîte')")
    expect(page.locator("#mailbox-error")).to_contain_text(
        "a atteint sa limite de 3 boîtes aux lettres"
    )

    # 5. Delegate the admin's mailbox to the secretary, read and send.
    page.click("nav.subnav >> text=Délégations")
    page.select_option("#boite", label=ADMIN)
    page.select_option("#compte", label=f"Mme Claire Petit (secretariat@{DOMAIN})")
    page.select_option("#droit", "envoi")
    page.click("button:has-text('Accorder')")
    expect(page.locator(".notice")).to_have_text("Délégation accordée.")
    expect(page.locator("table")).to_contain_text("lecture et envoi")
    assert (ADMIN, f"secretariat@{DOMAIN}", True) in delegations(node.settings)

    # 6. The screenshot of the admin console for the docs.
    page.click("nav.subnav >> text=Boîtes aux lettres")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin.png"), full_page=True)

    # 7. An app password, created and shown once, opens IMAP and SMTP (not POP3).
    page.click("nav.mainnav >> text=Logiciels de messagerie")
    page.fill("#libelle", "Thunderbird du cabinet")
    page.click("button:has-text('Créer')")
    app_password = page.inner_text("#app-password")
    assert mail_login(node.settings, ADMIN, app_password, "imap").login == ADMIN
    assert mail_login(node.settings, ADMIN, app_password, "smtp").login == ADMIN
    with pytest.raises(Exception, match="incorrect"):
        mail_login(node.settings, ADMIN, app_password, "pop3")
    page.click("text=Terminé")
    expect(page.locator("table")).to_contain_text("Thunderbird du cabinet")
    assert app_password not in page.content()

    # 8. The audit viewer shows what happened, filtered.
    page.goto("/admin/journal?action=mailbox.")
    expect(page.locator("table.audit")).to_contain_text("mailbox.create")
    expect(page.locator("table.audit")).not_to_contain_text("web.login")

    # 9. The secretary logs in with the password the admin got; English on request.
    other = new_context(browser, node).new_page()
    log_in_password(other, f"secretariat@{DOMAIN}", new_password)
    enrol_totp_at_first_login(other)
    other.goto("/admin/comptes")
    expect(other.locator("h1")).to_have_text("Accès refusé")
    other.goto("/accueil?lang=en")
    expect(other.locator("h1")).to_contain_text("Hello Claire")
    other.goto("/compte")
    expect(other.locator("h1")).to_have_text("My account")

    assert console_errors == [], console_errors
    context.close()


def test_webauthn_key_in_chromium(browser: Browser, node: Node) -> None:
    """Register a passkey with Chromium's virtual authenticator, then log in with it."""
    context = new_context(browser, node)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    # The first login enrols the required second factor: here a security key.
    log_in_password(page, ADMIN, ADMIN_PASSWORD)
    expect(page).to_have_url(re.compile(r"/compte/securite/enrolement$"))
    page.fill("#cle-nom", "Clé virtuelle")
    page.click("button:has-text('Utiliser une clé de sécurité')")
    expect(page).to_have_url(re.compile(r"/compte/securite$"))
    expect(page.locator(".notice")).to_have_text("Clé de sécurité enregistrée.")
    expect(page.locator("ul.plain").first).to_contain_text("Clé virtuelle")

    page.click("header button:has-text('Se déconnecter')")
    log_in_password(page, ADMIN, ADMIN_PASSWORD)
    expect(page).to_have_url(re.compile(r"/connexion/verification$"))
    page.click("#webauthn-login")
    expect(page).to_have_url(re.compile(r"/accueil$"))
    expect(page.locator("h1")).to_contain_text("Bonjour Alice")
    context.close()
