"""Security of every page: CSRF on every state-changing route, strict CSP with no inline script
(parsed HTML), security headers, request body limit, login rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Route

from caducee.app import App
from caducee.services import mfa
from caducee.web import account, admin, home, login
from caducee.web.config import WebConfig
from tests.web.conftest import PASSWORD, Clock, People, WebClient, _client
from tests.web.helpers import assert_strict_page, enrol_totp


def post_routes() -> list[str]:
    paths = []
    for module in (login, home, account, admin):
        for route in module.routes:
            if isinstance(route, Route) and "POST" in (route.methods or ()):
                paths.append(route.path)
    return sorted(set(paths))


def concrete(path: str, people: People) -> str:
    return (
        path.replace("{account_id}", str(people.doctor_a.id))
        .replace("{mailbox_id}", "1")
        .replace("{item_id}", "1")
        .replace("{key_id}", "1")
    )


def test_every_post_route_is_listed() -> None:
    routes = post_routes()
    assert "/connexion" in routes and "/admin/comptes/nouveau" in routes
    assert len(routes) >= 25


async def test_csrf_missing_or_wrong_is_refused_everywhere(
    web: WebClient, people: People, app: App
) -> None:
    await web.login(people.admin_a.login)
    audit_before = len(await _audit(app))
    for path in post_routes():
        if path == "/connexion":
            continue
        target = concrete(path, people)
        missing = await web.http.post(target, data={"nom": "X"})
        assert missing.status_code == 403, (path, missing.status_code)
        wrong = await web.http.post(target, data={"csrf": "faux", "nom": "X"})
        assert wrong.status_code == 403, (path, wrong.status_code)
        wrong_header = await web.http.post(target, json={}, headers={"x-csrf-token": "faux-aussi"})
        assert wrong_header.status_code == 403, path
    # Nothing happened: no audit record, still logged in.
    assert len(await _audit(app)) == audit_before
    assert (await web.http.get("/accueil")).status_code == 200


async def _audit(app: App) -> list[Any]:
    from tests.web.helpers import audit_actions

    return await audit_actions(app)


async def test_login_form_needs_its_token(web: WebClient, people: People) -> None:
    no_cookie = await web.http.post(
        "/connexion",
        data={"identifiant": people.doctor_a.login, "mot_de_passe": PASSWORD, "csrf": "x"},
    )
    assert no_cookie.status_code == 403
    await web.get("/connexion")
    wrong = await web.post(
        "/connexion",
        {"identifiant": people.doctor_a.login, "mot_de_passe": PASSWORD},
        csrf="pas-le-bon",
    )
    assert wrong.status_code == 403
    assert web.session_cookie() is None


async def test_pages_have_strict_csp_and_no_inline_script(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    anonymous = await web.get("/connexion")
    assert_strict_page(anonymous)
    await web.login(people.admin_a.login)
    pages = [
        "/accueil",
        "/compte",
        "/compte/securite",
        "/compte/applications",
        "/admin/cabinet",
        "/admin/comptes",
        "/admin/comptes/nouveau",
        f"/admin/comptes/{people.doctor_a.id}",
        "/admin/boites",
        "/admin/delegations",
        "/admin/journal",
        "/admin/journal?du=2020-01-01&resultat=ok",
        "/teletransmission",
        "/teletransmission?etat=sans_arl&du=2020-01-01",
        "/admin/comptes/999999",  # error page
    ]
    for path in pages:
        response = await web.get(path)
        assert_strict_page(response)
        assert "img-src 'self';" in response.headers["content-security-policy"]
    # Pages answering a POST (secrets shown once) and the QR code page.
    created = await web.post(
        "/compte/applications", {"libelle": "Thunderbird", "protocoles": ["imap"]}
    )
    assert_strict_page(created)
    await web.get("/compte/securite")
    await web.post("/compte/securite/totp/commencer")
    qr = await web.get("/compte/securite/totp")
    assert_strict_page(qr)
    assert "img-src 'self' data:" in qr.headers["content-security-policy"]
    assert 'src="data:image/svg+xml' in qr.text
    # The second-factor page of a half session.
    await web.get("/compte/securite")
    await web.post("/deconnexion")
    async with _client(app, WebConfig(clock=clock)) as http:
        other = WebClient(http)
        await other.login(people.doctor_a.login)
        await enrol_totp(other, clock)
        await other.get("/compte")
        await other.post("/deconnexion")
        await other.login(people.doctor_a.login)
        assert_strict_page(await other.get("/connexion/verification"))
        assert_strict_page(await other.get("/nulle-part", headers={"accept": "text/html"}))


async def test_static_scripts_are_ours(web: WebClient) -> None:
    for name in ("ui.js", "webauthn.js"):
        response = await web.http.get(f"/static/{name}")
        assert response.status_code == 200
        assert "javascript" in response.headers["content-type"]
        assert "http://" not in response.text and "https://" not in response.text
    css = await web.http.get("/static/caducee.css")
    assert css.status_code == 200 and "@import" not in css.text and "url(" not in css.text


async def test_security_headers(web: WebClient, people: People) -> None:
    for response in (
        await web.http.get("/connexion"),
        await web.http.get("/accueil"),
        await web.http.get("/static/caducee.css"),
        await web.http.get("/nulle-part"),
    ):
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]


async def test_request_body_limit(app: App, people: People, clock: Clock) -> None:
    async with _client(app, WebConfig(clock=clock, max_body_bytes=4096)) as http:
        response = await http.post(
            "/connexion",
            content=b"identifiant=" + b"a" * 10_000,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413

        async def chunks() -> Any:
            for _ in range(10):
                yield b"a" * 1000

        streamed = await http.post(
            "/connexion",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413
        small = await http.post(
            "/connexion",
            content=b"identifiant=a",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert small.status_code == 403  # reached the route (no login token)


async def test_login_rate_limit_per_address(app: App, people: People, clock: Clock) -> None:
    async with _client(app, WebConfig(clock=clock, login_attempts_per_minute=3)) as http:
        client = WebClient(http)
        await client.get("/connexion")
        statuses = []
        for _ in range(5):
            response = await client.post(
                "/connexion", {"identifiant": people.doctor_a.login, "mot_de_passe": "faux"}
            )
            statuses.append(response.status_code)
        assert statuses[:3] == [401, 401, 401]
        assert statuses[3:] == [429, 429]
        assert "retry-after" in response.headers
        assert "Trop de tentatives" in response.text


@pytest.mark.parametrize(
    ("query", "header", "cookie", "expected"),
    [
        ("", None, None, "Connexion"),
        ("?lang=en", None, None, "Log in"),
        ("", "en-GB,en;q=0.9,fr;q=0.5", None, "Log in"),
        ("", "de-DE,fr;q=0.8", None, "Connexion"),
        ("", "en", "fr", "Connexion"),
        ("?lang=fr", "en", "en", "Connexion"),
    ],
)
async def test_language(
    web: WebClient, query: str, header: str | None, cookie: str | None, expected: str
) -> None:
    if cookie:
        web.http.cookies.set("__Host-caducee-lang", cookie, domain="mail.test.example")
    headers = {"accept-language": header} if header else {}
    response = await web.http.get(f"/connexion{query}", headers=headers)
    assert f"<h1>{expected}</h1>" in response.text
    lang = "en" if expected == "Log in" else "fr"
    assert f'<html lang="{lang}">' in response.text
    if query:
        assert f"__Host-caducee-lang={lang}" in ";".join(response.headers.get_list("set-cookie"))


async def test_language_is_remembered(web: WebClient, people: People) -> None:
    await web.http.get("/connexion?lang=en")
    await web.login(people.admin_a.login)
    page = await web.get("/admin/boites")
    assert "Mailboxes" in page.text and "Boîtes aux lettres" not in page.text
    assert "personal" in page.text
    assert "Votre session" not in page.text


async def test_services_errors_follow_the_language(web: WebClient, people: People) -> None:
    await web.http.get("/connexion?lang=en")
    await web.get("/connexion")
    response = await web.post(
        "/connexion", {"identifiant": people.doctor_a.login, "mot_de_passe": "faux"}
    )
    assert "Wrong login or password." in response.text


async def test_required_policy_is_per_practice(app: App, people: People) -> None:
    await mfa.set_second_factor_required(app, people.practice_b.id, True, actor="t", source="t")
    assert not await mfa.second_factor_required(app, people.practice_a.id)
