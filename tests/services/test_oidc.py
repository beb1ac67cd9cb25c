"""Access tokens of the OpenID provider (for SASL OAUTHBEARER / XOAUTH2): what is accepted and
every way a token is refused (real provider on loopback, real signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update

from caducee.app import App
from caducee.errors import AccessDenied
from caducee.services import oidc
from caducee.store.tables import accounts
from tests.oidc_provider import AUDIENCE, CLIENT_ID, TestProvider
from tests.services.helpers import person, practice

RPPS = "10003456784"
IDNAT = "8" + RPPS


@pytest.fixture
async def ready(app: App, provider: TestProvider) -> App:
    app.settings.oidc_issuer = provider.issuer
    app.settings.oidc_client_id = CLIENT_ID
    app.settings.oidc_audience = AUDIENCE
    await practice(app, "cabinet.test")
    account, _ = await person(app, "dr.martin@cabinet.test")
    async with app.db.write() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == account.id).values(rpps=RPPS))
    return app


async def test_valid_access_token_names_the_account(ready: App, provider: TestProvider) -> None:
    account = await oidc.provider(ready).account_for_access_token(provider.access_token(IDNAT))
    assert account.login == "dr.martin@cabinet.test"


def _unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _hs256(claims: dict[str, object], secret: bytes) -> str:
    """The key-confusion attack: HMAC keyed with the provider's public key."""

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'cle-1'})}.{part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


async def test_refused_tokens(ready: App, provider: TestProvider) -> None:
    check = oidc.provider(ready).account_for_access_token
    now = int(time.time())
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": provider.issuer, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    public_pem = provider.key.public_key().public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    cases = {
        "expired": provider.access_token(IDNAT, lifetime=-120),
        "audience": provider.access_token(IDNAT, audience="autre-service"),
        "issuer": provider.access_token(IDNAT, issuer="https://faux.example"),
        "other key": provider.access_token(IDNAT, key=other_key),
        "alg none": _unsigned({**claims, "SubjectNameID": IDNAT}),
        "hs256 with the public key": _hs256({**claims, "SubjectNameID": IDNAT}, public_pem),
        "garbage": "pas-un-jeton",
        "no rpps": provider.access_token("pas-un-rpps"),
        "unknown rpps": provider.access_token("8" + "10000000008"),
    }
    for label, token in cases.items():
        with pytest.raises(AccessDenied):
            await check(token)
            pytest.fail(f"accepted: {label}")


def test_rpps_of_national_identifiers() -> None:
    assert oidc.rpps_of(IDNAT) == RPPS
    assert oidc.rpps_of(RPPS) == RPPS
    assert oidc.rpps_of("3" + RPPS) is None  # another kind of national identifier
    assert oidc.rpps_of(12345) is None


def test_acr_must_be_one_of_the_configured_values() -> None:
    assert oidc.acr_satisfied("eidas1", "eidas1")
    assert oidc.acr_satisfied("eidas2", "eidas2 eidas1")
    assert not oidc.acr_satisfied("eidas0", "eidas1")
    assert not oidc.acr_satisfied(None, "eidas1")
    assert not oidc.acr_satisfied(["eidas1"], "eidas1")
    assert not oidc.acr_satisfied("eidas1", "")  # nothing required: nothing proven
