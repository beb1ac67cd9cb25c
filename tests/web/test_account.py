"""The user's own pages: profile, app passwords (shown once, usable by mail clients), second
factors (TOTP off, recovery codes, key removal)."""

from __future__ import annotations

import re

import pytest

from caducee.app import App
from caducee.errors import AccessDenied
from caducee.services import mfa, webauthn_keys
from caducee.services.auth import authenticate_mail
from tests.web.conftest import PASSWORD, Clock, People, WebClient
from tests.web.helpers import CODE, audit_dump, enrol_totp

APP_PASSWORD = re.compile(r'<code id="app-password">([a-z0-9-]+)</code>')


async def test_profile_shows_identity(web: WebClient, people: People) -> None:
    await web.login(people.secretary_a.login)
    page = await web.get("/compte")
    assert people.secretary_a.login in page.text
    assert "Secrétaire" in page.text and "Cabinet A" in page.text


async def test_app_password_created_once_and_usable(
    web: WebClient, people: People, app: App
) -> None:
    await web.login(people.doctor_a.login)
    await web.get("/compte/applications")
    created = await web.post(
        "/compte/applications", {"libelle": "Thunderbird", "protocoles": ["imap", "smtp"]}
    )
    assert created.status_code == 200
    found = APP_PASSWORD.search(created.text)
    assert found
    password = found.group(1)
    principal = await authenticate_mail(app, people.doctor_a.login, password, "imap", "127.0.0.1")
    assert principal.account.id == people.doctor_a.id
    with pytest.raises(AccessDenied):  # out of its scopes
        await authenticate_mail(app, people.doctor_a.login, password, "pop3", "127.0.0.1")
    listing = await web.get("/compte/applications")
    assert "Thunderbird" in listing.text and password not in listing.text
    assert password not in await audit_dump(app)

    item_id = re.search(r"/compte/applications/(\d+)/revoquer", listing.text)
    assert item_id
    revoked = await web.post(f"/compte/applications/{item_id.group(1)}/revoquer")
    assert revoked.status_code == 303
    with pytest.raises(AccessDenied):
        await authenticate_mail(app, people.doctor_a.login, password, "imap", "127.0.0.1")
    await web.get("/compte/applications")
    again = await web.post(f"/compte/applications/{item_id.group(1)}/revoquer")
    assert again.status_code == 400 and "déjà révoqué" in again.text


async def test_app_password_errors(web: WebClient, people: People, app: App) -> None:
    await web.login(people.doctor_a.login)
    await web.get("/compte/applications")
    no_label = await web.post("/compte/applications", {"libelle": " ", "protocoles": ["imap"]})
    assert no_label.status_code == 400 and "libellé" in no_label.text
    await web.get("/compte/applications")
    no_scope = await web.post("/compte/applications", {"libelle": "X"})
    assert no_scope.status_code == 400 and "au moins un protocole" in no_scope.text


async def test_someone_elses_app_password_is_not_found(
    web: WebClient, people: People, app: App
) -> None:
    from caducee.services import app_passwords

    await app_passwords.create_app_password(app, people.secretary_a.login, "Poste accueil")
    theirs = (await app_passwords.list_app_passwords(app, people.secretary_a.login))[0]
    await web.login(people.doctor_a.login)
    await web.get("/compte/applications")
    response = await web.post(f"/compte/applications/{theirs.id}/revoquer")
    assert response.status_code == 404
    assert not (await app_passwords.list_app_passwords(app, people.secretary_a.login))[0].revoked


async def test_totp_disable_needs_the_password(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    await web.login(people.doctor_a.login)
    await enrol_totp(web, clock)
    await web.get("/compte/securite")
    wrong = await web.post("/compte/securite/totp/desactiver", {"mot_de_passe": "faux"})
    assert wrong.status_code == 400
    assert (await mfa.second_factors(app, people.doctor_a.id)).totp
    ok = await web.post("/compte/securite/totp/desactiver", {"mot_de_passe": PASSWORD})
    assert ok.status_code == 303
    assert not (await mfa.second_factors(app, people.doctor_a.id)).totp


async def test_recovery_codes_regenerated(
    web: WebClient, people: People, app: App, clock: Clock
) -> None:
    await web.login(people.doctor_a.login)
    await web.get("/compte/securite")
    refused = await web.post("/compte/securite/codes-de-secours")
    assert refused.status_code == 400  # no second factor yet
    _secret, first = await enrol_totp(web, clock)
    await web.get("/compte/securite")
    response = await web.post("/compte/securite/codes-de-secours")
    second = CODE.findall(response.text)
    assert len(second) == 10 and not set(first) & set(second)
    with pytest.raises(AccessDenied):
        await mfa.use_recovery_code(app, people.doctor_a.login, first[0], "127.0.0.1")
    await mfa.use_recovery_code(app, people.doctor_a.login, second[0], "127.0.0.1")
    dump = await audit_dump(app)
    assert all(code not in dump for code in first + second)


async def test_recovery_code_of_another_account_is_refused(app: App, people: People) -> None:
    codes = await mfa.generate_recovery_codes(app, people.doctor_a, actor="t", source="t")
    with pytest.raises(AccessDenied):
        await mfa.use_recovery_code(app, people.secretary_a.login, codes[0], "1.2.3.4")


async def test_key_removal(web: WebClient, people: People, app: App) -> None:
    await web.login(people.doctor_a.login)  # before the key exists: no second step
    row_id = await webauthn_keys.add_webauthn_credential(
        app,
        people.doctor_a,
        credential_id="AAAA",
        public_key=b"k",
        sign_count=0,
        label="Clé",
        transports=["usb"],
        source="t",
    )
    other = await webauthn_keys.add_webauthn_credential(
        app,
        people.secretary_a,
        credential_id="BBBB",
        public_key=b"k",
        sign_count=0,
        label="Clé",
        transports=[],
        source="t",
    )
    await web.get("/compte/securite")
    not_mine = await web.post(f"/compte/securite/cles/{other}/supprimer")
    assert not_mine.status_code == 404
    await web.get("/compte/securite")
    removed = await web.post(f"/compte/securite/cles/{row_id}/supprimer")
    assert removed.status_code == 303
    assert await webauthn_keys.webauthn_credentials(app, people.doctor_a.id) == []
    assert len(await webauthn_keys.webauthn_credentials(app, people.secretary_a.id)) == 1
