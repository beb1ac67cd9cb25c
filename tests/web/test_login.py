"""Login: password, then TOTP, a recovery code or a WebAuthn key; required second factor."""

from __future__ import annotations

import re

from caducee.app import App
from caducee.domain.model import Role
from caducee.services import accounts, mfa, practices, webauthn_keys
from caducee.services.audit import iter_records
from tests.web.conftest import PASSWORD, Clock, People, WebClient
from tests.web.helpers import SECRET, audit_actions, audit_dump, enrol_totp, totp_code
from tests.web.softkey import SoftKey

ORIGIN = "https://mail.test.example"


async def test_password_only_login_lands_on_home(web: WebClient, people: People, app: App) -> None:
    response = await web.login(people.doctor_a.login)
    assert response.status_code == 303
    assert response.headers["location"] == "/accueil"
    home = await web.get("/accueil")
    assert home.status_code == 200
    assert "Bonjour Jeanne" in home.text
    assert "Activez la validation en deux étapes" in home.text
    actions = await audit_actions(app)
    assert (people.doctor_a.login, "auth.password", people.doctor_a.login, "ok") in actions
    assert (people.doctor_a.login, "web.login", people.doctor_a.login, "ok") in actions


async def test_wrong_password_is_refused_generically(
    web: WebClient, people: People, app: App
) -> None:
    await web.get("/connexion")
    wrong = await web.post(
        "/connexion", {"identifiant": people.doctor_a.login, "mot_de_passe": "Nope-Nope-123"}
    )
    unknown = await web.post(
        "/connexion", {"identifiant": "personne@cabinet-a.test", "mot_de_passe": "Nope-Nope-123"}
    )
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Identifiant ou mot de passe incorrect." in response.text
    assert web.session_cookie() is None
    assert "Nope-Nope-123" not in await audit_dump(app)


async def test_lockout_message_after_repeated_failures(
    web: WebClient, people: People, app: App
) -> None:
    await web.get("/connexion")
    for _ in range(app.settings.lockout_threshold):
        await web.post("/connexion", {"identifiant": people.doctor_a.login, "mot_de_passe": "x"})
    locked = await web.post(
        "/connexion", {"identifiant": people.doctor_a.login, "mot_de_passe": PASSWORD}
    )
    assert locked.status_code == 429
    assert "temporairement bloqué" in locked.text


async def test_totp_enrolment_then_login_with_code(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    await web.login(people.doctor_a.login)
    secret, codes = await enrol_totp(web, clock)
    assert len(codes) == 10 and len(set(codes)) == 10
    await web.post("/deconnexion")

    clock.advance(seconds=30)
    response = await web.login(people.doctor_a.login)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/connexion/verification"
    half = web.session_cookie()
    # A half-logged-in session opens nothing else.
    blocked = await web.http.get("/accueil")
    assert blocked.status_code == 303
    assert blocked.headers["location"] == "/connexion/verification"

    wrong = await web.post("/connexion/verification", {"methode": "totp", "code": "000000"})
    assert wrong.status_code == 401
    assert "Code de vérification incorrect" in wrong.text

    ok = await web.post(
        "/connexion/verification", {"methode": "totp", "code": totp_code(secret, clock)}
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/accueil"
    assert web.session_cookie() not in (None, half)  # rotated
    assert (await web.get("/accueil")).status_code == 200
    actions = await audit_actions(app)
    assert (people.doctor_a.login, "auth.totp", people.doctor_a.login, "ok") in actions
    assert secret not in await audit_dump(app)


async def test_recovery_code_works_once(
    web: WebClient, people: People, app: App, clock: Clock, new_client: object
) -> None:
    await web.login(people.doctor_a.login)
    _secret, codes = await enrol_totp(web, clock)
    await web.post("/deconnexion")

    await web.login(people.doctor_a.login)
    used = await web.post(
        "/connexion/verification", {"methode": "secours", "code": codes[0].upper()}
    )
    assert used.status_code == 303 and used.headers["location"] == "/accueil"
    factors = await mfa.second_factors(app, people.doctor_a.id)
    assert factors.recovery_codes_left == 9
    await web.get("/accueil")
    await web.post("/deconnexion")

    await web.login(people.doctor_a.login)
    again = await web.post("/connexion/verification", {"methode": "secours", "code": codes[0]})
    assert again.status_code == 401
    assert "Code de secours incorrect" in again.text
    assert codes[0] not in await audit_dump(app)


async def test_required_second_factor_sends_to_enrolment(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    await mfa.set_second_factor_required(
        app, people.practice_a.id, True, actor="test", source="test"
    )
    response = await web.login(people.doctor_a.login)
    assert response.headers["location"] == "/compte/securite/enrolement"
    for path in ("/accueil", "/compte", "/compte/applications"):
        blocked = await web.http.get(path)
        assert blocked.status_code == 303
        assert blocked.headers["location"] == "/compte/securite/enrolement"
    page = await web.get("/compte/securite/enrolement")
    assert "Second facteur obligatoire" in page.text
    # The security-key button waits for its script: clicked before, the form would be sent
    # natively, as a GET carrying the key's name in the address.
    key_button = re.search(r'<form id="webauthn-register".*?<button([^>]*)>', page.text, re.S)
    assert key_button is not None and " disabled" in key_button.group(1)
    half = web.session_cookie()
    _secret, codes = await enrol_totp(web, clock)
    assert len(codes) == 10
    assert web.session_cookie() != half
    assert (await web.get("/accueil")).status_code == 200
    # Other practices are not affected.
    assert not await mfa.second_factor_required(app, people.practice_b.id)


async def test_last_factor_cannot_be_removed_when_required(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    await web.login(people.doctor_a.login)
    await enrol_totp(web, clock)
    await mfa.set_second_factor_required(
        app, people.practice_a.id, True, actor="test", source="test"
    )
    await web.get("/compte/securite")
    refused = await web.post("/compte/securite/totp/desactiver", {"mot_de_passe": PASSWORD})
    assert refused.status_code == 400
    assert "ajoutez-en un autre" in refused.text
    assert (await mfa.second_factors(app, people.doctor_a.id)).totp


async def test_webauthn_key_registration_and_login(
    web: WebClient, people: People, app: App
) -> None:
    key = SoftKey()
    await web.login(people.doctor_a.login)
    await web.get("/compte/securite")
    options = (await web.post_json("/compte/securite/cles/options", {})).json()
    assert options["rp"]["id"] == app.settings.hostname
    answer = key.register(options, ORIGIN)
    registered = await web.post_json(
        "/compte/securite/cles", {"label": "Clé bleue", "credential": answer}
    )
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"redirect": "/compte/securite"}
    keys = await webauthn_keys.webauthn_credentials(app, people.doctor_a.id)
    assert [k.label for k in keys] == ["Clé bleue"]
    # The session was rotated (a factor was added): the page gives the new CSRF token.
    await web.get("/compte/securite")
    # The same challenge cannot be used twice.
    replay = await web.post_json("/compte/securite/cles", {"label": "x", "credential": answer})
    assert replay.status_code == 400
    await web.get("/compte/securite")
    await web.post("/deconnexion")

    response = await web.login(people.doctor_a.login)
    assert response.headers["location"] == "/connexion/verification"
    page = await web.get("/connexion/verification")
    assert 'id="webauthn-login"' in page.text
    options = (await web.post_json("/connexion/cle/options", {})).json()
    assert [c["id"] for c in options["allowCredentials"]] == [keys[0].credential_id]

    # An assertion signed by another key, or for another origin, is refused.
    stranger = SoftKey()
    stranger.credential_id = key.credential_id
    bad = await web.post_json(
        "/connexion/cle", {"credential": stranger.assert_(options, ORIGIN, "mail.test.example")}
    )
    assert bad.status_code == 401
    options = (await web.post_json("/connexion/cle/options", {})).json()
    evil = await web.post_json(
        "/connexion/cle",
        {"credential": key.assert_(options, "https://evil.example", "mail.test.example")},
    )
    assert evil.status_code == 401

    options = (await web.post_json("/connexion/cle/options", {})).json()
    ok = await web.post_json(
        "/connexion/cle", {"credential": key.assert_(options, ORIGIN, "mail.test.example")}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"redirect": "/accueil"}
    assert (await web.get("/accueil")).status_code == 200
    actions = await audit_actions(app)
    assert (people.doctor_a.login, "auth.webauthn", people.doctor_a.login, "ok") in actions
    assert (people.doctor_a.login, "auth.webauthn", people.doctor_a.login, "failed") in actions
    stored = await webauthn_keys.webauthn_credentials(app, people.doctor_a.id)
    assert stored[0].sign_count == key.sign_count


async def test_login_next_path_is_local_only(web: WebClient, people: People) -> None:
    page = await web.get("/connexion?suite=//evil.example/x")
    assert "evil.example" not in page.text
    await web.get("/connexion?suite=/compte")
    response = await web.post(
        "/connexion",
        {"identifiant": people.doctor_a.login, "mot_de_passe": PASSWORD, "suite": "/compte"},
    )
    assert response.headers["location"] == "/compte"
    await web.get("/compte")
    await web.post("/deconnexion")
    await web.get("/connexion")
    response = await web.post(
        "/connexion",
        {
            "identifiant": people.doctor_a.login,
            "mot_de_passe": PASSWORD,
            "suite": "https://evil.example/",
        },
    )
    assert response.headers["location"] == "/accueil"


async def test_a_new_practice_requires_a_second_factor_by_default(
    app: App, web: WebClient, clock: Clock
) -> None:
    """Web access to mail asks for TOTP or a security key from the start: the first login
    opens only the enrolment, whose TOTP page shows the QR code; app passwords stay for mail
    clients."""
    practice = await practices.create_practice(app, "Cabinet neuf", ["cabinet-neuf.test"])
    assert await mfa.second_factor_required(app, practice.id)
    await accounts.add_account(
        app,
        accounts.NewAccount(
            login="dr.neuf@cabinet-neuf.test", first_name="Jeanne", last_name="Neuf",
            role=Role.PRATICIEN, password=PASSWORD,
        ),
    )  # fmt: skip
    response = await web.login("dr.neuf@cabinet-neuf.test")
    assert response.headers["location"] == "/compte/securite/enrolement"
    blocked = await web.http.get("/accueil")
    assert blocked.headers["location"] == "/compte/securite/enrolement"
    await web.get("/compte/securite/enrolement")
    await web.post("/compte/securite/totp/commencer")
    qr_page = await web.get("/compte/securite/totp")
    assert qr_page.status_code == 200 and 'src="data:image/svg+xml' in qr_page.text
    secret = SECRET.search(qr_page.text)
    assert secret
    confirmed = await web.post(
        "/compte/securite/totp/confirmer", {"code": totp_code(secret.group(1), clock)}
    )
    assert confirmed.status_code == 200 and (await web.get("/accueil")).status_code == 200
    created = [r async for r in iter_records(app.db) if r.action == "practice.create"]
    assert '"require_second_factor": true' in created[-1].details
