"""The charter on the patient portal: the short form on every page (the emergency line even on
a closed link's page), the response delay of the sender's charter and the link to the full
charter, which the link alone opens (public rules, no health content), in French and English."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import date

import pytest

from caducee.app import App
from caducee.domain.charter import Charter, Closure
from caducee.health import charter
from tests.health.pickups import MARKER, Cabinet, cabinet, deposit, token_of
from tests.health.sms_provider_server import ProviderServer
from tests.web.conftest import WebClient
from tests.web.helpers import assert_strict_page
from tests.web.test_portal import enter_with_code

EMERGENCY = "Ce service ne remplace pas une consultation. En cas d'urgence : 15 ou 112"


@pytest.fixture
async def cab(app: App) -> Cabinet:
    made = await cabinet(app)
    custom = replace(
        Charter(),
        delay_days=3,
        accepted=("resultats", "renouvellement"),
        closures=(Closure(date(2099, 8, 1), date(2099, 8, 20), "Congés d'été"),),
        region="974",
        free_text="Pour les certificats de sport, prenez rendez-vous.",
    )
    await charter.save(app, made.practice.id, custom, actor="admin", source="test")
    return made


def text_of(page: str) -> str:
    return html.unescape(page)


async def test_short_form_on_the_landing_and_the_full_page(
    app: App, web: WebClient, cab: Cabinet
) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    landing = await web.get(base)
    shown = text_of(landing.text)
    assert EMERGENCY in shown and "Réponse sous 3 jours ouvrés." in shown
    assert f'href="{base}/charte"' in landing.text
    full = await web.get(f"{base}/charte")
    assert_strict_page(full)
    page = text_of(full.text)
    assert "Charte de Cabinet Test" in page and MARKER not in page
    assert "Résultats d'examens" in page and "Renouvellement d'ordonnance" in page
    assert "Ne sont pas traités par messagerie : Conseil simple ; Rendez-vous" in page
    assert "Congés d'été (du 01/08/2099 au 20/08/2099)" in page
    assert "La Réunion" in page and "3114" in page and "116 117" in page
    assert "Pour les certificats de sport, prenez rendez-vous." in page
    assert "peut attendre sa réponse au plus tard le" in page
    english = text_of((await web.get(f"{base}/charte?lang=en")).text)
    assert "This service does not replace a consultation. In an emergency: 15 or 112" in english
    assert "What the practice handles by e-mail" in english and "Prescription renewal" in english


async def test_every_portal_page_shows_it(
    app: App, web: WebClient, cab: Cabinet, sms_server: ProviderServer
) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    await enter_with_code(web, sms_server, base)
    code_page = await web.get(f"{base}/verifier")
    message = await web.get(f"{base}/message")
    for page in (code_page, message):
        assert EMERGENCY in text_of(page.text) and f'href="{base}/charte"' in page.text
    unknown = await web.get("/portail/inconnu-0123456789")
    assert unknown.status_code == 404 and EMERGENCY in text_of(unknown.text)


async def test_a_practitioners_own_charter_is_shown_with_their_messages(
    app: App, web: WebClient, cab: Cabinet
) -> None:
    await charter.save(app, cab.practice.id, replace(Charter(), delay_days=1),
                       account_id=cab.mailbox.owner_account_id, actor="a", source="t")  # fmt: skip
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    assert "Réponse sous 1 jour ouvré." in text_of((await web.get(base)).text)
