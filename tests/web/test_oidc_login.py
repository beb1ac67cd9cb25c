"""Login with Pro Santé Connect against a local OpenID provider (real HTTP, real RS256 tokens):
the authorization code flow with state, nonce and PKCE, the RPPS mapping, and refusals."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from sqlalchemy import update

from caducee.app import App
from caducee.services import mfa
from caducee.services.audit import iter_records
from caducee.store.tables import accounts
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, TestProvider
from tests.web.conftest import Clock, People, WebClient
from tests.web.helpers import enrol_totp, totp_code

RPPS = "10003456784"  # Luhn-valid
IDNAT = "8" + RPPS


@pytest.fixture
async def psc(app: App, people: People, provider: TestProvider) -> TestProvider:
    app.settings.oidc_issuer = provider.issuer
    app.settings.oidc_client_id = CLIENT_ID
    app.settings.oidc_client_secret = CLIENT_SECRET
    async with app.db.write() as conn:
        await conn.execute(
            update(accounts).where(accounts.c.id == people.doctor_a.id).values(rpps=RPPS)
        )
    return provider


async def _through_provider(web: WebClient, provider: TestProvider, identifier: str) -> str:
    """Start on our side, let the provider approve ``identifier``; our return URL (path+query)."""
    provider.identifier = identifier
    start = await web.get("/connexion/psc")
    assert start.status_code == 303
    location = start.headers["location"]
    assert location.startswith(provider.issuer + "/authorize?")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["code_challenge_method"] == "S256" and query["state"] and query["nonce"]
    async with httpx.AsyncClient() as browser:  # the provider is a real server
        approved = await browser.get(location)
    assert approved.status_code == 302
    back = urllib.parse.urlsplit(approved.headers["location"])
    assert back.path == "/connexion/psc/retour"
    return f"{back.path}?{back.query}"


async def test_login_page_offers_psc_only_when_configured(
    app: App, web: WebClient, psc: TestProvider
) -> None:
    assert "Pro Santé Connect" in (await web.get("/connexion")).text
    app.settings.oidc_issuer = ""
    assert "Pro Santé Connect" not in (await web.get("/connexion")).text
    assert (await web.get("/connexion/psc")).status_code == 404


async def test_psc_login_opens_a_full_session(
    app: App, web: WebClient, psc: TestProvider, people: People
) -> None:
    # The CPS card or e-CPS (acr eidas1) is itself two factors: even where the practice
    # requires a second factor, none is asked on top of it.
    await mfa.set_second_factor_required(
        app, people.practice_a.id, True, actor="test", source="test"
    )
    assert app.settings.oidc_acr_values == "eidas1" and psc.acr == "eidas1"
    back = await _through_provider(web, psc, IDNAT)
    landed = await web.get(back)
    assert landed.status_code == 200 and 'http-equiv="refresh"' in landed.text
    assert web.session_cookie()
    home = await web.get("/accueil")
    assert home.status_code == 200 and "Martin" in home.text
    logins = [r async for r in iter_records(app.db) if r.action == "web.login"]
    assert logins[-1].actor == people.doctor_a.login and '"psc"' in logins[-1].details


async def test_return_without_our_cookie_or_with_another_state_is_refused(
    web: WebClient, psc: TestProvider, new_client: object
) -> None:
    back = await _through_provider(web, psc, IDNAT)
    async with new_client() as stranger:  # type: ignore[operator]
        refused = await stranger.get(back)  # no login cookie: a forged or replayed return
    assert refused.status_code == 403 and "état invalide" in refused.text
    tampered = back.replace("state=", "state=x")
    refused = await web.get(tampered)
    assert refused.status_code == 403 and not web.session_cookie()


async def test_unknown_rpps_is_refused_with_an_explanation(
    web: WebClient, psc: TestProvider
) -> None:
    back = await _through_provider(web, psc, "8" + "10000000008")
    refused = await web.get(back)
    assert refused.status_code == 403 and "RPPS" in refused.text
    assert not web.session_cookie()


async def test_disabled_account_is_refused(
    app: App, web: WebClient, psc: TestProvider, people: People
) -> None:
    async with app.db.write() as conn:
        await conn.execute(
            update(accounts).where(accounts.c.id == people.doctor_a.id).values(disabled=True)
        )
    refused = await web.get(await _through_provider(web, psc, IDNAT))
    assert refused.status_code == 403 and not web.session_cookie()


async def _last_login_method(app: App) -> str:
    logins = [r async for r in iter_records(app.db) if r.action == "web.login"]
    return logins[-1].details


@pytest.mark.parametrize("acr", ["eidas0", None])
async def test_psc_below_the_required_acr_asks_the_second_factor(
    app: App,
    web: WebClient,
    psc: TestProvider,
    people: People,
    clock: Clock,
    new_client: object,
    acr: str | None,
) -> None:
    """An ID token whose acr is lower than the configured acr_values (or missing) proves one
    factor only: the account's TOTP is asked, as after a password."""
    await web.login(people.doctor_a.login)
    secret, _codes = await enrol_totp(web, clock)
    clock.advance(seconds=30)
    psc.acr = acr
    async with new_client() as http:  # type: ignore[operator]
        browser = WebClient(http)
        landed = await browser.get(await _through_provider(browser, psc, IDNAT))
        assert landed.status_code == 200 and "url=/connexion/verification" in landed.text
        assert "second facteur" in landed.text
        blocked = await browser.http.get("/accueil")
        assert blocked.status_code == 303
        assert blocked.headers["location"] == "/connexion/verification"
        await browser.get("/connexion/verification")
        done = await browser.post(
            "/connexion/verification", {"methode": "totp", "code": totp_code(secret, clock)}
        )
        assert done.status_code == 303 and done.headers["location"] == "/accueil"
        home = await browser.get("/accueil")
        assert home.status_code == 200 and "Martin" in home.text
    assert '"totp"' in await _last_login_method(app)


async def test_psc_below_the_required_acr_goes_to_enrolment_when_required(
    app: App, web: WebClient, psc: TestProvider, people: People
) -> None:
    await mfa.set_second_factor_required(
        app, people.practice_a.id, True, actor="test", source="test"
    )
    psc.acr = "eidas0"
    landed = await web.get(await _through_provider(web, psc, IDNAT))
    assert landed.status_code == 200 and "url=/compte/securite/enrolement" in landed.text
    blocked = await web.http.get("/accueil")
    assert blocked.status_code == 303
    assert blocked.headers["location"] == "/compte/securite/enrolement"
