"""The SMS gateway against real local HTTPS servers playing each provider's API, the
development file provider, the production refusal, and bad numbers and texts."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from caducee.app import App
from caducee.config import load_settings
from caducee.errors import ConfigurationError, InvalidInput
from caducee.health import sms_http
from caducee.health.sms import mask_number, normalise_mobile, send_sms
from caducee.health.sms_providers import SmsError, outbox_path
from caducee.services.audit import AuditRecord, iter_records
from tests.health.sms_provider_server import ProviderServer

CODE_TEXT = "Cabinet Martin : votre code d'accès est 482913. Il expire dans 10 minutes."
SMSFACTOR_OK = {
    "status": 1,
    "message": "OK",
    "ticket": "14672468",
    "cost": 1,
    "credits": 642,
    "total": 1,
    "sent": 1,
    "blacklisted": 0,
    "duplicated": 0,
    "invalid": 0,
    "npai": 0,
}


@pytest.fixture
def backend() -> str:
    """The gateway does not depend on the database: SQLite is enough."""
    return "sqlite"


@pytest.fixture
def provider_server(tmp_path: Path) -> Iterator[ProviderServer]:
    server = ProviderServer(tmp_path / "provider").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pause before the retry only (a constant, not our code's behaviour)."""
    monkeypatch.setattr(sms_http, "RETRY_DELAY_SECONDS", 0.01)


async def sms_audit(app: App) -> list[AuditRecord]:
    return [r async for r in iter_records(app.db) if r.action == "sms.sent"]


def use_smsfactor(app: App, server: ProviderServer) -> None:
    app.settings.sms_provider = "smsfactor"
    app.settings.sms_url = server.url
    app.settings.sms_token = "jeton-smsfactor-de-test"
    app.settings.sms_ca_file = server.ca_file
    app.settings.sms_sender = "CabMartin"


def use_webhook(app: App, server: ProviderServer) -> None:
    app.settings.sms_provider = "webhook"
    app.settings.sms_url = server.url + "/hooks/sms"
    app.settings.sms_token = "jeton-webhook"
    app.settings.sms_secret = "secret-partage"
    app.settings.sms_ca_file = server.ca_file
    app.settings.sms_sender = "Caducee"


# --- SMSFactor -----------------------------------------------------------------------------------


async def test_smsfactor_receives_the_documented_request(
    app: App, provider_server: ProviderServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider_server.answers = [(200, SMSFACTOR_OK)]
    use_smsfactor(app, provider_server)
    caplog.set_level(logging.DEBUG)
    receipt = await send_sms(app, "06 12 34 56 78", CODE_TEXT, purpose="portal.code")
    assert receipt.provider == "smsfactor" and receipt.provider_id == "14672468"
    assert receipt.to == "+33612345678" and receipt.masked_to == "+33 6 ** ** ** 78"
    [request] = provider_server.received
    assert request.method == "POST" and request.path == "/send"
    assert request.headers["authorization"] == "Bearer jeton-smsfactor-de-test"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"].startswith("application/json")
    assert request.json() == {
        "sms": {
            "message": {
                "text": CODE_TEXT,
                "pushtype": "alert",
                "unicode": 0,
                "sender": "CabMartin",
            },
            "recipients": {"gsm": [{"value": "33612345678"}]},
        }
    }
    [audited] = await sms_audit(app)
    assert audited.result == "ok" and audited.target == "+33 6 ** ** ** 78"
    assert json.loads(audited.details) == {
        "provider": "smsfactor",
        "purpose": "portal.code",
        "parts": 1,
    }
    assert "482913" not in audited.details + audited.target
    assert "482913" not in caplog.text and "+33612345678" not in caplog.text


async def test_smsfactor_moderation_status_counts_as_sent(
    app: App, provider_server: ProviderServer
) -> None:
    provider_server.answers = [(200, {**SMSFACTOR_OK, "status": -8, "message": "Moderation"})]
    use_smsfactor(app, provider_server)
    receipt = await send_sms(app, "+33612345678", "Votre code : 111222")
    assert receipt.provider_id == "14672468" and len(provider_server.received) == 1


async def test_smsfactor_refusal_is_a_clear_error_audited_without_text(
    app: App, provider_server: ProviderServer
) -> None:
    provider_server.answers = [(401, {"status": -1, "message": "Authentication error"})]
    use_smsfactor(app, provider_server)
    with pytest.raises(SmsError) as caught:
        await send_sms(app, "0612345678", "Votre code : 482913")
    assert "SMSFactor a refusé l'envoi" in caught.value.fr
    assert "Authentication error" in caught.value.fr and "482913" not in caught.value.fr
    assert caught.value.reason == "status_-1"
    assert len(provider_server.received) == 1  # a refusal is not retried
    [audited] = await sms_audit(app)
    assert audited.result == "failed" and "482913" not in audited.details
    assert json.loads(audited.details)["reason"] == "status_-1"


async def test_smsfactor_not_enough_credits_in_a_200_answer(
    app: App, provider_server: ProviderServer
) -> None:
    provider_server.answers = [(200, {"status": -3, "message": "Not enough credits"})]
    use_smsfactor(app, provider_server)
    with pytest.raises(SmsError, match="Not enough credits"):
        await send_sms(app, "0612345678", "Votre code : 482913")


async def test_a_server_error_is_retried_once(app: App, provider_server: ProviderServer) -> None:
    provider_server.answers = [
        (500, {"status": -99, "message": "Unknown error"}),
        (200, SMSFACTOR_OK),
    ]
    use_smsfactor(app, provider_server)
    receipt = await send_sms(app, "0612345678", "Votre code : 482913")
    assert receipt.provider_id == "14672468" and len(provider_server.received) == 2
    assert provider_server.received[0].body == provider_server.received[1].body


async def test_two_server_errors_give_up(app: App, provider_server: ProviderServer) -> None:
    provider_server.answers = [(503, {})]
    use_smsfactor(app, provider_server)
    with pytest.raises(SmsError, match="HTTP 503") as caught:
        await send_sms(app, "0612345678", "Votre code : 482913")
    assert "Réessayez" in caught.value.fr and len(provider_server.received) == 2


async def test_an_unknown_certificate_is_refused_without_sending(
    app: App, provider_server: ProviderServer
) -> None:
    use_smsfactor(app, provider_server)
    app.settings.sms_ca_file = ""  # the system's CAs do not know the test CA
    with pytest.raises(SmsError, match="certificat TLS") as caught:
        await send_sms(app, "0612345678", "Votre code : 482913")
    assert caught.value.reason == "certificate" and provider_server.received == []


async def test_an_unreachable_provider(app: App, provider_server: ProviderServer) -> None:
    use_smsfactor(app, provider_server)
    provider_server.stop()
    with pytest.raises(SmsError, match="injoignable"):
        await send_sms(app, "0612345678", "Votre code : 482913")


# --- Generic webhook -----------------------------------------------------------------------------


async def test_webhook_posts_signed_json(app: App, provider_server: ProviderServer) -> None:
    provider_server.answers = [(202, {"id": "msg-42"})]
    use_webhook(app, provider_server)
    receipt = await send_sms(app, "+32 470 12 34 56", "Mot de passe : KX7P-93MF")
    assert receipt.provider_id == "msg-42" and receipt.to == "+32470123456"
    [request] = provider_server.received
    assert request.path == "/hooks/sms"
    assert request.json() == {
        "to": "+32470123456",
        "text": "Mot de passe : KX7P-93MF",
        "sender": "Caducee",
    }
    assert request.headers["authorization"] == "Bearer jeton-webhook"
    expected = hmac.new(b"secret-partage", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-caducee-signature"] == f"sha256={expected}"


async def test_webhook_without_token_or_secret_sends_no_such_header(
    app: App, provider_server: ProviderServer
) -> None:
    use_webhook(app, provider_server)
    app.settings.sms_token = app.settings.sms_secret = ""
    await send_sms(app, "0612345678", "Bonjour")
    [request] = provider_server.received
    assert "authorization" not in request.headers
    assert "x-caducee-signature" not in request.headers


async def test_webhook_client_error_is_not_retried(
    app: App, provider_server: ProviderServer
) -> None:
    provider_server.answers = [(403, {"error": "forbidden"})]
    use_webhook(app, provider_server)
    with pytest.raises(SmsError, match="HTTP 403"):
        await send_sms(app, "0612345678", "Bonjour")
    assert len(provider_server.received) == 1


# --- Development file ----------------------------------------------------------------------------


async def test_file_provider_appends_private_json_lines(app: App) -> None:
    app.settings.deployment = "development"
    app.settings.sms_provider = "fichier"
    await send_sms(app, "06 12 34 56 78", "Votre code : 482913")
    await send_sms(app, "07 98 76 54 32", "Votre code : 555000")
    path = outbox_path(app.settings)
    assert path == app.settings.data_dir / "sms" / "outbox.jsonl"
    assert path.stat().st_mode & 0o777 == 0o600
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [(line["to"], line["text"]) for line in lines] == [
        ("+33612345678", "Votre code : 482913"),
        ("+33798765432", "Votre code : 555000"),
    ]


async def test_file_provider_is_refused_in_production_at_send(app: App) -> None:
    app.settings.deployment = "production"
    app.settings.sms_provider = "fichier"
    with pytest.raises(SmsError, match="réservé au développement"):
        await send_sms(app, "0612345678", "Votre code : 482913")
    assert not outbox_path(app.settings).exists()


def test_file_provider_is_refused_in_production_at_startup(tmp_path: Path) -> None:
    (tmp_path / "caducee.toml").write_text('[sms]\nprovider = "fichier"\n', "utf-8")
    with pytest.raises(ConfigurationError, match="refusé en production"):
        load_settings(tmp_path)
    (tmp_path / "caducee.toml").write_text(
        'deployment = "development"\n[sms]\nprovider = "fichier"\nsender = "Cabinet"\n', "utf-8"
    )
    assert load_settings(tmp_path).sms_provider == "fichier"


def test_sms_settings_are_read_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "caducee.toml"
    config.write_text(
        '[sms]\nprovider = "smsfactor"\nsender = "CabMartin"\nca_file = "/etc/ca.pem"\n', "utf-8"
    )
    with pytest.raises(ConfigurationError, match="jeton"):
        load_settings(tmp_path)
    monkeypatch.setenv("CADUCEE_SMS_TOKEN", "depuis-env")
    settings = load_settings(tmp_path)
    assert (settings.sms_token, settings.sms_sender, settings.sms_ca_file) == (
        "depuis-env",
        "CabMartin",
        "/etc/ca.pem",
    )
    config.write_text('[sms]\nprovider = "smsfactor"\nsender = "Cabinet Martin"\n', "utf-8")
    with pytest.raises(ConfigurationError, match="11 lettres"):
        load_settings(tmp_path)
    config.write_text('[sms]\nprovider = "webhook"\nurl = "http://exemple.fr/sms"\n', "utf-8")
    with pytest.raises(ConfigurationError, match="https://"):
        load_settings(tmp_path)
    config.write_text('[sms]\nprovider = "pigeon"\n', "utf-8")
    with pytest.raises(ConfigurationError, match="inconnu"):
        load_settings(tmp_path)


async def test_no_provider_configured(app: App) -> None:
    with pytest.raises(SmsError, match="Aucun fournisseur SMS"):
        await send_sms(app, "0612345678", "Bonjour")


# --- Numbers and texts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("07 98 76 54 32", "+33798765432"),
        ("0692 12 34 56", "+262692123456"),  # La Réunion
    ],
)
def test_numbers_are_normalised(written: str, e164: str) -> None:
    assert normalise_mobile(written) == e164


@pytest.mark.parametrize("bad", ["", "06 12", "12345678901234567", "bonjour", "+33 6 12 34"])
async def test_bad_numbers_are_refused_before_any_request(
    app: App, provider_server: ProviderServer, bad: str
) -> None:
    use_smsfactor(app, provider_server)
    with pytest.raises(InvalidInput, match="Numéro de téléphone invalide"):
        await send_sms(app, bad, "Bonjour")
    assert provider_server.received == []


def test_a_landline_cannot_receive_sms() -> None:
    with pytest.raises(InvalidInput, match="pas un numéro de mobile"):
        normalise_mobile("01 42 68 53 00")


def test_masked_numbers() -> None:
    assert mask_number("+33612345678") == "+33 6 ** ** ** 78"
    assert mask_number("+32470123456") == "+32 4******56"


async def test_text_limits(app: App, provider_server: ProviderServer) -> None:
    provider_server.answers = [(200, SMSFACTOR_OK)]
    use_smsfactor(app, provider_server)
    with pytest.raises(InvalidInput, match="306 au plus"):
        await send_sms(app, "0612345678", "a" * 307)
    with pytest.raises(InvalidInput, match="306 au plus"):
        await send_sms(app, "0612345678", "€" * 154)  # extension characters count twice
    with pytest.raises(InvalidInput, match="vide"):
        await send_sms(app, "0612345678", "  ")
    with pytest.raises(InvalidInput, match="impossibles"):
        await send_sms(app, "0612345678", "Code 🔑 123")
    assert provider_server.received == []
    receipt = await send_sms(app, "0612345678", "a" * 306)
    assert receipt.parts == 2
    await send_sms(app, "0612345678", "Clé : ouvrez-la à l’aide de « 7-Zip » – ça s’ouvre. Fenêtre")
    sent = provider_server.received[-1].json()
    assert isinstance(sent, dict)
    assert (
        sent["sms"]["message"]["text"]
        == "Clé : ouvrez-la à l'aide de \"7-Zip\" - ca s'ouvre. Fenetre"
    )
