"""Checks of the ``[sms]`` settings, part of the configuration layer: run when the settings load
(so ``caducee serve`` refuses to start on a bad SMS configuration) and again before every SMS is
sent."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from caducee.errors import ConfigurationError

if TYPE_CHECKING:
    from caducee.config import Settings

#: Provider names accepted in ``[sms] provider`` ("" : no SMS gateway).
PROVIDERS = ("", "fichier", "webhook", "smsfactor")

#: Alphanumeric sender: at most 11 letters or digits (what operators accept).
SENDER = re.compile(r"[A-Za-z0-9]{1,11}")


def check_sms_settings(settings: Settings) -> None:
    """Raise :class:`ConfigurationError` on an unusable ``[sms]`` configuration."""
    provider = settings.sms_provider
    if provider not in PROVIDERS:
        raise ConfigurationError(
            f"[sms] provider {provider!r} inconnu : choisissez fichier, webhook ou smsfactor.",
            f"[sms] provider {provider!r} is unknown: choose fichier, webhook or smsfactor.",
        )
    if provider == "fichier" and settings.deployment == "production":
        raise ConfigurationError(
            "Le fournisseur SMS « fichier » n'envoie rien : il est réservé au développement et "
            "refusé en production. Configurez un vrai fournisseur ([sms] provider = "
            '"smsfactor" ou "webhook") ou, pour une démonstration, deployment = "development".',
            "The 'fichier' SMS provider sends nothing: it is for development only and refused "
            'in production. Configure a real provider ([sms] provider = "smsfactor" or '
            '"webhook") or, for a demo, deployment = "development".',
        )
    if settings.sms_sender and not SENDER.fullmatch(settings.sms_sender):
        raise ConfigurationError(
            f"[sms] sender {settings.sms_sender!r} : 1 à 11 lettres ou chiffres sans accent ni "
            "espace.",
            f"[sms] sender {settings.sms_sender!r}: 1 to 11 unaccented letters or digits.",
        )
    if provider == "webhook" and not settings.sms_url:
        raise ConfigurationError(
            '[sms] provider = "webhook" demande l\'adresse du webhook ([sms] url).',
            '[sms] provider = "webhook" needs the webhook address ([sms] url).',
        )
    if settings.sms_url and not settings.sms_url.startswith("https://"):
        raise ConfigurationError(
            f"[sms] url doit commencer par https:// (reçu {settings.sms_url!r}).",
            f"[sms] url must start with https:// (got {settings.sms_url!r}).",
        )
    if provider == "smsfactor" and not settings.sms_token:
        raise ConfigurationError(
            '[sms] provider = "smsfactor" demande le jeton d\'API SMSFactor ([sms] token ou '
            "CADUCEE_SMS_TOKEN).",
            '[sms] provider = "smsfactor" needs the SMSFactor API token ([sms] token or '
            "CADUCEE_SMS_TOKEN).",
        )
