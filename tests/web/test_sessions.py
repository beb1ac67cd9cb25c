"""Server-side sessions: cookie flags, hashed tokens, idle and absolute expiry (fake clock),
rotation, logout, log out everywhere, disabled accounts, password changes."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from caducee.app import App
from caducee.services import accounts
from caducee.store.tables import web_sessions
from caducee.web.config import WebConfig
from tests.web.conftest import PASSWORD, Clock, People, WebClient, _client
from tests.web.helpers import audit_actions


async def _rows(app: App) -> list[Any]:
    async with app.db.read() as conn:
        return list((await conn.execute(select(web_sessions))).all())


async def test_cookie_flags(web: WebClient, people: People) -> None:
    await web.get("/connexion")
    response = await web.post(
        "/connexion", {"identifiant": people.doctor_a.login, "mot_de_passe": PASSWORD}
    )
    cookies = [c for c in response.headers.get_list("set-cookie") if "caducee-session=" in c]
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie.startswith("__Host-caducee-session=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/" in cookie.lower()
    assert "domain" not in attributes  # __Host- cookies carry no Domain
    token = web.session_cookie()
    assert token is not None and len(token) >= 43  # 256 bits in base64url


async def test_only_the_token_hash_is_stored(web: WebClient, people: People, app: App) -> None:
    await web.login(people.doctor_a.login)
    token = web.session_cookie()
    assert token
    rows = await _rows(app)
    assert len(rows) == 1
    assert rows[0].token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    for value in rows[0]._mapping.values():
        assert token not in str(value)


async def test_idle_timeout(web: WebClient, people: People, clock: Clock) -> None:
    await web.login(people.doctor_a.login)
    for _ in range(4):  # activity keeps the session alive past the idle timeout
        clock.advance(minutes=25)
        assert (await web.http.get("/compte")).status_code == 200
    clock.advance(minutes=31)
    expired = await web.http.get("/compte")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/connexion?suite=/compte"
    assert "__Host-caducee-flash=expired" in ";".join(expired.headers.get_list("set-cookie"))
    page = await web.get("/connexion")
    assert "Votre session a expiré" in page.text


async def test_absolute_lifetime(web: WebClient, people: People, clock: Clock, app: App) -> None:
    await web.login(people.doctor_a.login)
    for _ in range(12 * 3 - 1):
        clock.advance(minutes=20)
        assert (await web.http.get("/accueil")).status_code == 200
    clock.advance(minutes=20)  # 12 h after the login, however active
    assert (await web.http.get("/accueil")).status_code == 303
    assert await _rows(app) == []  # the expired session was deleted when met


async def test_lifetimes_are_configurable(app: App, people: People, clock: Clock) -> None:
    config = WebConfig(
        clock=clock, session_idle=timedelta(minutes=5), session_absolute=timedelta(hours=1)
    )
    async with _client(app, config) as http:
        client = WebClient(http)
        response = await client.login(people.doctor_a.login)
        assert "max-age=3600" in ";".join(response.headers.get_list("set-cookie")).lower()
        clock.advance(minutes=4)
        assert (await http.get("/accueil")).status_code == 200
        clock.advance(minutes=6)
        assert (await http.get("/accueil")).status_code == 303


async def test_config_from_toml(app: App) -> None:
    app.settings.config_path.write_text(
        "[web]\nsession_idle_minutes = 10\nsession_absolute_hours = 8\nmax_body_bytes = 2048\n",
        "utf-8",
    )
    config = WebConfig.from_settings(app.settings)
    assert config.session_idle == timedelta(minutes=10)
    assert config.session_absolute == timedelta(hours=8)
    assert config.max_body_bytes == 2048


async def test_session_rotates_at_login(web: WebClient, people: People) -> None:
    await web.login(people.doctor_a.login)
    first = web.session_cookie()
    await web.post("/deconnexion")
    await web.login(people.doctor_a.login)
    assert web.session_cookie() not in (None, first)


async def test_logout_ends_the_session_on_the_server(
    web: WebClient, people: People, app: App
) -> None:
    await web.login(people.doctor_a.login)
    token = web.session_cookie()
    assert token
    response = await web.post("/deconnexion")
    assert response.status_code == 303 and response.headers["location"] == "/connexion"
    assert web.session_cookie() is None
    assert await _rows(app) == []
    # Replaying the old cookie opens nothing.
    web.http.cookies.set("__Host-caducee-session", token, domain="mail.test.example")
    assert (await web.http.get("/accueil")).status_code == 303
    assert (people.doctor_a.login, "web.logout", people.doctor_a.login, "ok") in (
        await audit_actions(app)
    )


async def test_logout_everywhere(web: WebClient, people: People, app: App, new_client: Any) -> None:
    await web.login(people.doctor_a.login)
    async with new_client() as other_http:
        other = WebClient(other_http)
        await other.login(people.doctor_a.login)
        async with new_client() as third_http:
            colleague = WebClient(third_http)
            await colleague.login(people.secretary_a.login)
            page = await web.get("/compte/securite")
            assert page.text.count('class="row"') >= 2  # both sessions are listed
            response = await web.post("/deconnexion/partout")
            assert response.status_code == 303
            assert (await other_http.get("/accueil")).status_code == 303
            assert (await web.http.get("/accueil")).status_code == 303
            assert (await third_http.get("/accueil")).status_code == 200  # someone else's
    actions = await audit_actions(app)
    assert (people.doctor_a.login, "web.logout_all", people.doctor_a.login, "ok") in actions


async def test_disabled_account_loses_its_sessions(
    web: WebClient, people: People, app: App
) -> None:
    await web.login(people.doctor_a.login)
    await accounts.set_disabled(app, people.doctor_a.login, True)
    assert (await web.http.get("/accueil")).status_code == 303
    assert await _rows(app) == []
    await web.get("/connexion")
    refused = await web.post(
        "/connexion", {"identifiant": people.doctor_a.login, "mot_de_passe": PASSWORD}
    )
    assert refused.status_code == 401


async def test_password_change_rotates_and_ends_other_sessions(
    web: WebClient, people: People, new_client: Any
) -> None:
    new_password = "Autre-Mot-De-Passe-2031"
    await web.login(people.doctor_a.login)
    async with new_client() as other_http:
        other = WebClient(other_http)
        await other.login(people.doctor_a.login)
        before = web.session_cookie()
        await web.get("/compte")
        mismatch = await web.post(
            "/compte/mot-de-passe",
            {"actuel": PASSWORD, "nouveau": new_password, "confirmation": "autre"},
        )
        assert mismatch.status_code == 400
        wrong = await web.post(
            "/compte/mot-de-passe",
            {"actuel": "mauvais", "nouveau": new_password, "confirmation": new_password},
        )
        assert wrong.status_code == 400 and "actuel est incorrect" in wrong.text
        weak = await web.post(
            "/compte/mot-de-passe",
            {"actuel": PASSWORD, "nouveau": "court", "confirmation": "court"},
        )
        assert weak.status_code == 400 and "trop faible" in weak.text
        changed = await web.post(
            "/compte/mot-de-passe",
            {"actuel": PASSWORD, "nouveau": new_password, "confirmation": new_password},
        )
        assert changed.status_code == 303
        assert web.session_cookie() not in (None, before)
        assert (await web.http.get("/compte")).status_code == 200
        assert (await other_http.get("/compte")).status_code == 303
    await web.post("/deconnexion", csrf=(await _csrf(web)))
    assert (await web.login(people.doctor_a.login, new_password)).status_code == 303


async def _csrf(web: WebClient) -> str:
    await web.get("/compte")
    return web.csrf


async def test_unknown_or_garbage_cookie(web: WebClient, people: People) -> None:
    for value in ("nope", "x" * 500, ""):
        web.http.cookies.set("__Host-caducee-session", value, domain="mail.test.example")
        response = await web.http.get("/accueil")
        assert response.status_code == 303
        assert isinstance(response, httpx.Response)


async def test_stale_sessions_are_purged_at_login(
    web: WebClient, people: People, app: App, clock: Clock, new_client: Any
) -> None:
    await web.login(people.doctor_a.login)
    clock.advance(hours=1)  # idle: dead, but still a row until someone logs in
    assert len(await _rows(app)) == 1
    async with new_client() as other_http:
        await WebClient(other_http).login(people.secretary_a.login)
    rows = await _rows(app)
    assert [r.account_id for r in rows] == [people.secretary_a.id]
