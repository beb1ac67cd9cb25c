"""The charter on the patient portal in Debian's Chromium, at a phone's width (360 px): the
short form is visible under the top bar of the landing page, nothing scrolls sideways, and its
link opens the full charter (emergency numbers, hours, closures), itself without sideways
scroll. The full page's screenshot goes to the docs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from playwright.sync_api import Browser, Page, expect

from caducee.app import open_app
from caducee.domain.charter import Charter, Closure
from caducee.health import charter
from caducee.services import mailboxes
from tests.e2e.conftest import SCREENSHOTS, Node
from tests.e2e.test_browser import in_thread
from tests.e2e.test_portal_browser import DOCTOR, _deposit, browser, sms_file

pytestmark = pytest.mark.e2e
__all__ = ["browser", "sms_file"]  # fixtures used here


def _save_charter(node: Node) -> None:
    async def go() -> None:
        async with open_app(node.settings) as app:
            box = await mailboxes.get_mailbox(app, DOCTOR)
            rules = replace(
                Charter(),
                delay_days=2,
                closures=(Closure(date(2099, 8, 3), date(2099, 8, 21), "Congés d'été"),),
                free_text="Pour un certificat de sport, prenez rendez-vous au secrétariat.",
            )
            await charter.save(app, box.practice_id, rules, actor="test", source="test")

    in_thread(go())


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.evaluate("window.innerWidth"), width


def test_charter_on_the_portal_at_360_px(browser: Browser, node: Node) -> None:
    token = _deposit(node, 7, with_doctor=True)
    _save_charter(node)
    context = browser.new_context(
        base_url=node.base_url,
        locale="fr-FR",
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"/portail/{token}")
    short = page.get_by_role("complementary", name="Charte du cabinet")
    expect(short).to_be_visible()
    expect(short).to_contain_text("Ce service ne remplace pas une consultation.")
    expect(short).to_contain_text("En cas d'urgence : 15 ou 112")
    expect(short).to_contain_text("Réponse sous 2 jours ouvrés.")
    box = short.bounding_box()
    assert box is not None and box["y"] < 740 and box["width"] <= 360  # on the first screen
    _no_sideways_scroll(page)

    short.get_by_role("link", name="Charte du cabinet").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Charte de Cabinet de test E2E")
    expect(page.get_by_role("heading", name="Urgences")).to_be_visible()
    expect(page.locator(".charter-numbers")).to_contain_text("3114")
    expect(page.locator(".charter-numbers")).to_contain_text("116 117")
    expect(page.locator("main")).to_contain_text("Congés d'été (du 03/08/2099 au 21/08/2099)")
    expect(page.locator("main")).to_contain_text("certificat de sport")
    _no_sideways_scroll(page)
    page.screenshot(path=str(SCREENSHOTS / "portal-charter.png"), full_page=True)
    context.close()


def test_admin_edits_the_charter_with_a_live_preview(browser: Browser, node: Node) -> None:
    """The console's preview follows the fields as they are typed (charter-preview.js), shows
    errors in French, and saving makes the portal's charter."""
    from tests.e2e.conftest import ADMIN, ADMIN_PASSWORD
    from tests.e2e.test_browser import enrol_totp_at_first_login, log_in_password, new_context

    page = new_context(browser, node).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    log_in_password(page, ADMIN, ADMIN_PASSWORD)
    enrol_totp_at_first_login(page)
    page.goto("/admin/charte")
    preview = page.locator("#charter-preview")
    expect(preview).to_contain_text("Réponse sous 2 jours ouvrés.")
    page.fill("#delai", "4")
    expect(preview).to_contain_text("Réponse sous 4 jours ouvrés.")
    page.fill("#horaires_samedi", "09:00-12:00")
    expect(preview.locator(".charter-hours")).to_contain_text("09:00–12:00")
    page.fill("#urgences", "Appelez-nous.")
    expect(preview.get_by_role("alert")).to_contain_text("doit citer le 15 et le 112")
    page.fill("#urgences", "")
    page.get_by_label("Conseil simple").uncheck()
    expect(preview).to_contain_text("Ne sont pas traités par messagerie : Conseil simple")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator(".notice").first).to_contain_text("Modifications enregistrées.")
    expect(page.locator("#delai")).to_have_value("4")
    assert errors == []
