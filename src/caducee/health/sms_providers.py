"""SMS providers: where an SMS goes once its number and text are checked.

- ``fichier`` (development only): one JSON line per SMS in ``<data>/sms/outbox.jsonl`` (0600);
- ``webhook``: ``{"to", "text", "sender"}`` POSTed as JSON to ``[sms] url``, with an optional
  bearer token and an ``X-Caducee-Signature: sha256=<hex>`` HMAC of the body; 2xx = sent;
- ``smsfactor``: SMSFactor's HTTP API (``POST /send``, https://dev.smsfactor.com), bearer token,
  JSON body ``{"sms": {"message": {...}, "recipients": {"gsm": [...]}}}``; the answer's
  ``status`` is 1 (OK) or -8 (accepted, under moderation), anything else is an error.

A provider returns the provider's id for the SMS ("" when it gives none) or raises
:class:`SmsError`. The text of an SMS never reaches a log, an audit record or an error message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from caducee.config import Settings
from caducee.errors import CaduceeError
from caducee.health import sms_http
from caducee.sms_settings import check_sms_settings

SMSFACTOR_URL = "https://api.smsfactor.com"
#: SMSFactor answer statuses meaning "accepted" (-8: under moderation, sent afterwards).
SMSFACTOR_ACCEPTED = (1, -8)
SIGNATURE_HEADER = "X-Caducee-Signature"


class SmsError(CaduceeError):
    """An SMS could not be sent. ``reason`` is a short code for the audit trail (never the
    text of the SMS): "config", "network", "certificate", "http_<status>", "status_<n>"."""

    def __init__(self, fr: str, en: str, *, reason: str) -> None:
        super().__init__(fr, en)
        self.reason = reason


@dataclass(frozen=True)
class Outgoing:
    to: str  # E.164, e.g. "+33612345678"
    text: str  # GSM 03.38 characters only
    sender: str


Provider = Callable[[Settings, Outgoing], Awaitable[str]]


def outbox_path(settings: Settings) -> Path:
    """The development provider's file."""
    return settings.data_dir / "sms" / "outbox.jsonl"


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


async def send_to_file(settings: Settings, sms: Outgoing) -> str:
    check_sms_settings(settings)  # refuses "fichier" in production
    sms_id = f"fichier-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
    record = {
        "id": sms_id,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "to": sms.to,
        "sender": sms.sender,
        "text": sms.text,
    }
    await asyncio.to_thread(
        _append_line, outbox_path(settings), json.dumps(record, ensure_ascii=False) + "\n"
    )
    return sms_id


def _unreachable(name: str, failure: sms_http.HttpFailure) -> SmsError:
    if failure.certificate:
        return SmsError(
            f"Le certificat TLS du fournisseur SMS {name} n'est pas valide : SMS non envoyé. "
            "Vérifiez [sms] url et [sms] ca_file.",
            f"The TLS certificate of SMS provider {name} is not valid: SMS not sent. "
            "Check [sms] url and [sms] ca_file.",
            reason="certificate",
        )
    if failure.status:
        return SmsError(
            f"Le fournisseur SMS {name} est en erreur (HTTP {failure.status}) : SMS non envoyé. "
            "Réessayez dans quelques minutes.",
            f"SMS provider {name} is failing (HTTP {failure.status}): SMS not sent. "
            "Try again in a few minutes.",
            reason=f"http_{failure.status}",
        )
    return SmsError(
        f"Le fournisseur SMS {name} est injoignable : SMS non envoyé. "
        "Réessayez dans quelques minutes.",
        f"SMS provider {name} cannot be reached: SMS not sent. Try again in a few minutes.",
        reason="network",
    )


def _refused(name: str, status: int, detail_fr: str, detail_en: str = "") -> SmsError:
    return SmsError(
        f"Le fournisseur SMS {name} a refusé l'envoi ({detail_fr}) : SMS non envoyé. "
        "Vérifiez le compte et le jeton d'API du fournisseur.",
        f"SMS provider {name} refused the SMS ({detail_en or detail_fr}): SMS not sent. "
        "Check the provider account and API token.",
        reason=f"http_{status}",
    )


async def send_to_webhook(settings: Settings, sms: Outgoing) -> str:
    body = sms_http.encode({"to": sms.to, "text": sms.text, "sender": sms.sender})
    headers: dict[str, str] = {}
    if settings.sms_token:
        headers["Authorization"] = f"Bearer {settings.sms_token}"
    if settings.sms_secret:
        digest = hmac.new(settings.sms_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        headers[SIGNATURE_HEADER] = f"sha256={digest}"
    try:
        answer = await sms_http.post_json(
            settings.sms_url, body, headers, ca_file=settings.sms_ca_file
        )
    except sms_http.HttpFailure as exc:
        raise _unreachable("webhook", exc) from None
    if not 200 <= answer.status < 300:
        raise _refused("webhook", answer.status, f"HTTP {answer.status}")
    value = answer.json()
    return str(value.get("id", ""))[:100] if isinstance(value, dict) else ""


async def send_to_smsfactor(settings: Settings, sms: Outgoing) -> str:
    message: dict[str, object] = {"text": sms.text, "pushtype": "alert", "unicode": 0}
    if sms.sender:
        message["sender"] = sms.sender
    payload = {
        "sms": {
            "message": message,
            "recipients": {"gsm": [{"value": sms.to.lstrip("+")}]},
        }
    }
    url = (settings.sms_url or SMSFACTOR_URL).rstrip("/") + "/send"
    headers = {"Authorization": f"Bearer {settings.sms_token}"}
    try:
        answer = await sms_http.post_json(
            url, sms_http.encode(payload), headers, ca_file=settings.sms_ca_file
        )
    except sms_http.HttpFailure as exc:
        raise _unreachable("SMSFactor", exc) from None
    value = answer.json()
    if not isinstance(value, dict):
        raise _refused("SMSFactor", answer.status, f"HTTP {answer.status}")
    try:
        status = int(value.get("status", 0))
    except (TypeError, ValueError):
        status = 0
    if status not in SMSFACTOR_ACCEPTED or not 200 <= answer.status < 300:
        said = str(value.get("message", ""))[:80]
        error = _refused(
            "SMSFactor", answer.status, f"statut {status} « {said} »", f"status {status} '{said}'"
        )
        error.reason = f"status_{status}"
        raise error
    return str(value.get("ticket", ""))[:100]


PROVIDERS: dict[str, Provider] = {
    "fichier": send_to_file,
    "webhook": send_to_webhook,
    "smsfactor": send_to_smsfactor,
}
