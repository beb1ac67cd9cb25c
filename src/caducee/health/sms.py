"""The SMS gateway: :func:`send_sms` checks the number and the text, hands the SMS to the
provider chosen in ``[sms] provider`` (see :mod:`caducee.health.sms_providers`) and audits
``sms.sent`` with the provider and a masked number — never the text (codes, passwords).

Texts are GSM 03.38 (the 7-bit SMS alphabet): French letters missing from it (ê, â, ç, œ…)
are replaced by their closest GSM letter, and a text is at most :data:`MAX_GSM_CHARS`
characters (two concatenated SMS), the extension characters (€, [, ], …) counting twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import phonenumbers

from caducee.app import App
from caducee.errors import ConfigurationError, InvalidInput
from caducee.health.sms_providers import PROVIDERS, Outgoing, SmsError
from caducee.services.audit import AuditEvent, record
from caducee.sms_settings import check_sms_settings

__all__ = [
    "MAX_GSM_CHARS",
    "SmsError",
    "SmsReceipt",
    "gsm_text",
    "mask_number",
    "normalise_mobile",
    "send_sms",
]

log = logging.getLogger(__name__)

#: Longest text: two concatenated SMS of 153 GSM characters.
MAX_GSM_CHARS = 306
#: Characters of one SMS alone (a longer text is split in parts of 153).
SINGLE_SMS_CHARS = 160

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Sent as an escape plus one character: they count twice.
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")

#: Closest GSM characters for French (and typographic) characters outside the alphabet.
TO_GSM = str.maketrans(
    {
        "â": "a", "ê": "e", "ë": "e", "î": "i", "ï": "i", "ô": "o", "û": "u", "ÿ": "y",
        "ç": "c", "À": "A", "Â": "A", "È": "E", "Ê": "E", "Ë": "E", "Î": "I", "Ï": "I",
        "Ô": "O", "Ù": "U", "Û": "U", "Ÿ": "Y", "œ": "oe", "Œ": "OE", "’": "'", "‘": "'",
        "«": '"', "»": '"', "“": '"', "”": '"', "\u00a0": " ", "\u202f": " ", "–": "-",
        "—": "-", "…": "...", "\t": " ",
    }
)  # fmt: skip

#: Regions tried, in order, for a number written without its country code: metropolitan France,
#: then the overseas departments and collectivities dialled with a leading 0 (0692… : Réunion).
FRENCH_REGIONS = ("FR", "RE", "YT", "GP", "MQ", "GF", "BL", "MF", "PM")

#: French guillemets keep their inner spaces in French; in an SMS they become plain quotes.
GUILLEMET_SPACES = re.compile("«[ \u00a0\u202f]+|[ \u00a0\u202f]+»")

MOBILE_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)


@dataclass(frozen=True)
class SmsReceipt:
    provider: str
    to: str  # E.164
    masked_to: str  # for screens and the audit trail: "+33 6 ** ** ** 78"
    provider_id: str  # the provider's id of the SMS, "" when it gives none
    parts: int  # SMS billed (1 or 2)


def normalise_mobile(number: str) -> str:
    """The E.164 form (``+33612345678``) of a mobile number written the French way
    (``06 12 34 56 78``) or internationally; :class:`InvalidInput` otherwise."""
    parsed = None
    for region in FRENCH_REGIONS:
        try:
            candidate = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            break
        if phonenumbers.is_valid_number(candidate):
            parsed = candidate
            break
    if parsed is None:
        raise InvalidInput(
            f"Numéro de téléphone invalide : {number[:40]!r}. Écrivez par exemple "
            "06 12 34 56 78 ou +33 6 12 34 56 78.",
            f"Invalid phone number: {number[:40]!r}. Write for example 06 12 34 56 78 or "
            "+33 6 12 34 56 78.",
        )
    if phonenumbers.number_type(parsed) not in MOBILE_TYPES:
        raise InvalidInput(
            "Ce numéro n'est pas un numéro de mobile : il ne peut pas recevoir de SMS.",
            "This is not a mobile number: it cannot receive text messages.",
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_number(e164: str) -> str:
    """``+33612345678`` → ``+33 6 ** ** ** 78``: enough to recognise, not to dial."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "***"
    national = phonenumbers.national_significant_number(parsed)
    if len(national) < 4:
        return f"+{parsed.country_code} ***"
    if parsed.country_code == 33 and len(national) == 9:
        return f"+33 {national[0]} ** ** ** {national[-2:]}"
    return f"+{parsed.country_code} {national[0]}{'*' * (len(national) - 3)}{national[-2:]}"


def gsm_length(text: str) -> int:
    return sum(2 if char in GSM_EXTENSION else 1 for char in text)


def gsm_text(text: str) -> str:
    """``text`` in the GSM alphabet, at most :data:`MAX_GSM_CHARS`; :class:`InvalidInput`
    when it is empty, too long or holds characters an SMS cannot carry."""
    converted = GUILLEMET_SPACES.sub(lambda m: m.group(0).strip(), text).translate(TO_GSM)
    if not converted.strip():
        raise InvalidInput("Le texte du SMS est vide.", "The text message is empty.")
    unsupported = sorted({c for c in converted if c not in GSM_BASIC and c not in GSM_EXTENSION})
    if unsupported:
        shown = " ".join(unsupported[:5])
        raise InvalidInput(
            f"Caractères impossibles à envoyer par SMS : {shown}.",
            f"Characters that cannot be sent by SMS: {shown}.",
        )
    length = gsm_length(converted)
    if length > MAX_GSM_CHARS:
        raise InvalidInput(
            f"SMS trop long : {length} caractères, {MAX_GSM_CHARS} au plus (deux SMS).",
            f"Text message too long: {length} characters, at most {MAX_GSM_CHARS} (two SMS).",
        )
    return converted


def sms_parts(text: str) -> int:
    return 1 if gsm_length(text) <= SINGLE_SMS_CHARS else 2


async def send_sms(
    app: App, to: str, text: str, *, actor: str = "system", purpose: str = ""
) -> SmsReceipt:
    """Send ``text`` to the mobile number ``to`` through the configured provider.

    ``purpose`` (e.g. "portal.code", "attachment.password") goes to the audit trail; the text
    never does. Raises :class:`InvalidInput` (number, text) or :class:`SmsError` (no provider,
    provider refused or unreachable)."""
    number = normalise_mobile(to)
    body = gsm_text(text)
    settings = app.settings
    masked = mask_number(number)
    provider = settings.sms_provider
    try:
        check_sms_settings(settings)
    except ConfigurationError as exc:
        raise SmsError(exc.fr, exc.en, reason="config") from None
    send = PROVIDERS.get(provider)
    if send is None:
        raise SmsError(
            "Aucun fournisseur SMS n'est configuré ([sms] provider) : SMS non envoyé.",
            "No SMS provider is configured ([sms] provider): SMS not sent.",
            reason="config",
        )
    details: dict[str, str | int | bool | None] = {"provider": provider, "purpose": purpose}
    try:
        provider_id = await send(settings, Outgoing(number, body, settings.sms_sender))
    except SmsError as exc:
        log.warning("sms failed provider=%s to=%s reason=%s", provider, masked, exc.reason)
        await record(
            app.db,
            AuditEvent(
                actor=actor,
                action="sms.sent",
                target=masked,
                source="system",
                result="failed",
                details={**details, "reason": exc.reason},
            ),
        )
        raise
    parts = sms_parts(body)
    await record(
        app.db,
        AuditEvent(
            actor=actor,
            action="sms.sent",
            target=masked,
            source="system",
            details={**details, "parts": parts},
        ),
    )
    log.info("sms sent provider=%s to=%s parts=%d", provider, masked, parts)
    return SmsReceipt(provider, number, masked, provider_id, parts)
