"""The antivirus rule (issue 19): every message that enters a mailbox from outside — the MX
(:mod:`caducee.flows.inbound`), submission (SMTP, webmail, REST API:
:mod:`caducee.flows.submission`), IMAP APPEND (:mod:`caducee.flows.append`), the patient
portal's replies (:mod:`caducee.flows.portal_reply`) — is scanned by ClamAV's daemon before
anything is stored. (A flow, as it speaks to clamd through :mod:`caducee.clients.clamd`.)

- Infected: :class:`~caducee.errors.VirusFound` (SMTP ``554 5.7.1``, IMAP ``NO``, the web
  says what to do), audited with the signature's name (``antivirus.infected``), nothing
  stored.
- clamd unreachable, slow (``[antivirus] timeout_seconds``) or answering an error: with
  ``on_unavailable = "tempfail"`` (the default) :class:`~caducee.errors.ScanUnavailable`
  (SMTP ``451 4.7.1``: the sender retries; the portal asks the patient to try again later);
  with ``"accept"`` the message goes in unscanned, and that is logged and audited
  (``antivirus.unscanned``) — never silently.
- A télétransmission lot or return encrypted for the funds (S/MIME ``enveloped-data`` or
  ``multipart/encrypted``) cannot be scanned: it is passed, never blocked nor delayed.
- No ``[antivirus] clamd``: no scan (``caducee doctor`` says so).

The message is streamed to clamd as it is (clamd decodes MIME, base64, archives and nested
messages). Nothing of the content is logged; the audit holds the door, the size and the
signature.
"""

from __future__ import annotations

import logging
import re

from caducee.app import App
from caducee.clients import clamd
from caducee.errors import ScanUnavailable, VirusFound
from caducee.services.audit import AuditEvent, Detail, record

log = logging.getLogger(__name__)

#: Top-level types whose content is encrypted end to end (RFC 8551 §3.3, RFC 1847 §2.2).
_ENCRYPTED = re.compile(
    rb"^content-type:[ \t]*(?:application/(?:x-)?pkcs7-mime|multipart/encrypted)\b",
    re.IGNORECASE | re.MULTILINE,
)
HEADER_SCAN_BYTES = 64 * 1024


def enabled(app: App) -> bool:
    return bool(app.settings.antivirus_clamd)


def is_encrypted(raw: bytes) -> bool:
    """Whether the message's top-level content is encrypted (its header block alone read)."""
    head = raw[:HEADER_SCAN_BYTES]
    end = min((i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0), default=-1)
    return bool(_ENCRYPTED.search(head if end < 0 else head[:end]))


async def check(
    app: App,
    raw: bytes,
    *,
    door: str,
    source: str,
    actor: str = "",
    teletransmission: bool = False,
) -> None:
    """Scan ``raw`` entering through ``door`` (``mx``, ``submission``, ``imap-append``,
    ``portal``…); raise :class:`VirusFound` or :class:`ScanUnavailable` (see the module's
    docstring). ``teletransmission``: a lot or a return of a télétransmission mailbox."""
    address = app.settings.antivirus_clamd
    if not address:
        return
    if teletransmission and is_encrypted(raw):
        log.info("antivirus skipped door=%s reason=encrypted-teletransmission", door)
        return
    try:
        result = await clamd.scan(address, raw, app.settings.antivirus_timeout_seconds)
    except clamd.ClamdUnavailable as exc:
        await _unavailable(app, door, source, actor, len(raw), f"clamd: {exc}")
        return
    if result.infected:
        log.warning(
            "antivirus infected door=%s signature=%s size=%d", door, result.detail, len(raw)
        )
        await _audit(
            app, "antivirus.infected", actor, source, "denied",
            {"door": door, "signature": result.detail, "size": len(raw)},
        )  # fmt: skip
        raise VirusFound(
            f"Message refusé : un virus a été détecté ({result.detail}). Rien n'a été "
            "enregistré. Faites analyser le fichier par votre antivirus avant de le renvoyer.",
            f"Message refused: a virus was found ({result.detail}). Nothing was stored. Have "
            "the file checked by your antivirus before sending it again.",
            result.detail,
        )
    if result.verdict == "error":
        await _unavailable(app, door, source, actor, len(raw), f"clamd error: {result.detail}")


async def _unavailable(
    app: App, door: str, source: str, actor: str, size: int, reason: str
) -> None:
    accept = app.settings.antivirus_on_unavailable == "accept"
    log.error(
        "antivirus unavailable door=%s reason=%s size=%d then=%s",
        door,
        reason,
        size,
        "accepted unscanned" if accept else "tempfail",
    )
    if not accept:
        raise ScanUnavailable(
            "Analyse antivirus momentanément impossible : réessayez dans quelques minutes.",
            "Antivirus scan unavailable for now: try again in a few minutes.",
        )
    await _audit(
        app, "antivirus.unscanned", actor, source, "failed",
        {"door": door, "reason": reason[:200], "size": size},
    )  # fmt: skip


async def _audit(
    app: App, action: str, actor: str, source: str, result: str, details: dict[str, Detail]
) -> None:
    """Content-free: the door, the size, the signature or the reason."""
    event = AuditEvent(actor=actor or "system", action=action, source=source, result=result,
                       details=details)  # fmt: skip
    await record(app.db, event)


async def reachable(app: App) -> bool | None:
    """None when no clamd is configured, else whether it answers (``caducee doctor``)."""
    if not enabled(app):
        return None
    return await clamd.ping(app.settings.antivirus_clamd)
