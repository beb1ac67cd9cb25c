"""Triage of incoming patient messages (issue 16): the one service the patient doors call.

- :func:`settings_of` / :func:`rules_of`: a practice's triage settings (its types, renamed,
  disabled or added, and the optional urgent alert), cached per practice on this node for
  :data:`CACHE_SECONDS` (a save on this node is seen at once, on another within that time);
  :func:`save`, audited ``triage.update``;
- :func:`classify_message`: a raw message classified with its practice's rules, in a worker
  thread (parsing and classifying are CPU work), never raising: on any failure the message is
  the default type *and* urgent, for a person to read;
- :func:`keywords`: the IMAP keywords a classified message is stored with
  (``$Caducee-Renouvellement``, ``$Caducee-Urgent``, …), so Thunderbird sees the triage;
- :func:`patient_practices`: which recipient mailboxes' practices know the sender as a verified
  patient (the MX classifies only those copies);
- :func:`delivered`: once a patient message is stored, the practice's urgent alert (e-mail
  and/or SMS, at once, whatever the hour) and the auto-replies
  (:func:`caducee.health.auto_replies.after_delivery`).

The alert advises and never diagnoses, and says nothing of the message: no content and no
sign, and the patient's name only in an e-mail that stays on this server (a local mailbox);
an SMS, carried in clear by a third party, names only the mailbox that received it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from caducee.app import App
from caducee.domain import triage_settings
from caducee.domain.model import Mailbox, MailboxType, StoredMessage
from caducee.domain.recipient_route import Purpose, Route
from caducee.domain.triage import Sign, Triage, TriageRules, classify
from caducee.domain.triage_input import classify_raw
from caducee.domain.triage_settings import TriageSettings
from caducee.errors import CaduceeError, InvalidInput
from caducee.health import (
    auto_replies,
    generated_mail,
    mon_espace_sante,
    patients,
    recipient_policy,
    sms,
)
from caducee.health.auto_replies import Channel
from caducee.services import cpu_pool
from caducee.services.audit import AuditEvent, append, record
from caducee.store import triage_repo

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_SECONDS",
    "Channel",
    "PatientCopies",
    "classify_message",
    "delivered",
    "keywords",
    "labels",
    "patient_practices",
    "portal_copies",
    "rules_of",
    "save",
    "settings_of",
    "warm_up",
]

#: How long a node keeps a practice's settings before reading them again.
CACHE_SECONDS = 30.0
keywords = triage_settings.keywords


class _Cache:
    def __init__(self, app: App) -> None:
        self.entries: dict[int, tuple[float, TriageSettings]] = {}


def _cache(app: App) -> _Cache:
    return app.component(_Cache, _Cache)


async def settings_of(app: App, practice_id: int) -> TriageSettings:
    """The practice's settings, or the defaults (no alert) when it saved none or they are
    unreadable (logged)."""
    cache = _cache(app)
    entry = cache.entries.get(practice_id)
    if entry is not None and time.monotonic() - entry[0] <= CACHE_SECONDS:
        return entry[1]
    async with app.db.read() as conn:
        text = await triage_repo.settings_text(conn, practice_id)
    found = TriageSettings()
    if text is not None:
        try:
            found = triage_settings.from_dict(json.loads(text))
        except (ValueError, InvalidInput):
            log.error("unreadable triage settings of practice %s", practice_id)
    cache.entries[practice_id] = (time.monotonic(), found)
    return found


async def rules_of(app: App, practice_id: int) -> TriageRules:
    return (await settings_of(app, practice_id)).rules


async def save(
    app: App, practice_id: int, settings: TriageSettings, *, actor: str, source: str
) -> TriageSettings:
    """Check and store a practice's settings (the alert's mobile in E.164), audited."""
    if settings.alert_mobile:
        settings = replace(settings, alert_mobile=sms.normalise_mobile(settings.alert_mobile))
    checked = triage_settings.from_dict(triage_settings.to_dict(settings))
    text = json.dumps(triage_settings.to_dict(checked), ensure_ascii=False, sort_keys=True)
    async with app.db.write() as conn:
        await triage_repo.save_settings(conn, practice_id, text, now=datetime.now(UTC), actor=actor)
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="triage.update",
                target=f"practice:{practice_id}",
                source=source,
                details={
                    "types": len(checked.rules.types),
                    "disabled": sum(not t.enabled for t in checked.rules.types),
                    "alert_email": bool(checked.alert_email),
                    "alert_sms": bool(checked.alert_mobile),
                },
            ),
        )
    _cache(app).entries.pop(practice_id, None)
    return checked


async def labels(app: App, practice_id: int, lang: str = "fr") -> dict[str, str]:
    """IMAP keyword → the practice's label for its type (disabled types too), for the
    webmail's labels; the « Urgent ? » keyword is not in it (the page words it)."""
    return triage_settings.labels_of_keywords(await rules_of(app, practice_id), lang)


# --- classification ---------------------------------------------------------------------------


async def classify_message(app: App, practice_id: int, raw: bytes) -> Triage:
    """The type and urgency of one patient message with its practice's rules. Never raises: a
    failure makes the message the default type and urgent, for a person to read."""
    try:
        rules = await rules_of(app, practice_id)
    except Exception:
        log.exception("triage settings of practice %s unreadable: defaults used", practice_id)
        rules = TriageSettings().rules
    try:
        # a big message (cpu_pool.PROCESS_THRESHOLD) in a worker process: 0.3-0.7 s of
        # pure-Python parsing and matching for a 15 MB or a deeply nested one (issue 17)
        return await cpu_pool.run_sized(len(raw), classify_raw, raw, rules)
    except Exception:
        log.exception("triage failed: the message is marked urgent for a person to read")
        return Triage(rules.default_type, True, (Sign("erreur", "triage impossible"),))


def warm_up() -> None:
    """Load the lemmatizer's dictionary (a second or so) before the first patient message:
    called in a thread at server start."""
    classify("Renouvellement", "Bonjour, je voudrais renouveler mon ordonnance.")


# --- which copies are a patient's --------------------------------------------------------------


@dataclass(frozen=True)
class PatientCopies:
    """The recipients of one practice for whom the sender is a verified patient."""

    practice_id: int
    addresses: tuple[str, ...]
    patient_name: str  # "" when unknown (a Mon espace santé address)
    channel: Channel
    triage: Triage

    @property
    def keywords(self) -> tuple[str, ...]:
        return keywords(self.triage)


async def patient_practices(
    app: App, sender: str, raw: bytes, boxes: Iterable[Mailbox]
) -> list[PatientCopies]:
    """For a message arriving on the MX: per practice of the recipient mailboxes, the copies
    whose sender is that practice's verified patient, classified with its rules. A Mon espace
    santé address is a patient's by definition (the MX admits it only as a reply to us).
    Télétransmission mailboxes are never a patient's correspondent."""
    by_practice: dict[int, list[str]] = {}
    for box in boxes:
        if box.type is not MailboxType.TLT and not box.disabled:
            by_practice.setdefault(box.practice_id, []).append(box.address)
    if not sender or not by_practice:
        return []
    mes = mon_espace_sante.is_mes_address(sender)
    out: list[PatientCopies] = []
    for practice_id, addresses in by_practice.items():
        name = ""
        if not mes:
            try:
                patient = await patients.verified_sender(app, practice_id, sender)
            except CaduceeError:
                continue
            if patient is None:
                continue
            name = patient.display_name
        verdict_triage = await classify_message(app, practice_id, raw)
        channel = Channel.MES if mes else Channel.MAIL
        out.append(PatientCopies(practice_id, tuple(addresses), name, channel, verdict_triage))
    return out


async def portal_copies(
    app: App, practice_id: int, patient_id: int | None, mailbox_address: str, raw: bytes
) -> PatientCopies:
    """A reply on the portal: the patient of a pickup writing to the mailbox that sent it."""
    name = ""
    if patient_id is not None:
        try:
            name = (await patients.get_patient(app, practice_id, patient_id)).display_name
        except CaduceeError:
            name = ""  # the patient was removed from the registry since: still a patient's
    verdict = await classify_message(app, practice_id, raw)
    return PatientCopies(practice_id, (mailbox_address,), name, Channel.PORTAL, verdict)


# --- after delivery: the urgent alert, then the auto-replies -----------------------------------


def alert_sms_text(mailbox_addresses: Sequence[str]) -> str:
    """The SMS: no name, no content, no sign (a third party carries it in clear)."""
    where = mailbox_addresses[0] if mailbox_addresses else "la messagerie"
    return (
        f"Caducée : message urgent possible reçu pour {where}. Lisez-le sans attendre. "
        "(Tri automatique, qui peut se tromper.)"
    )


def alert_message(
    *, hostname: str, sender: str, to: str, mailbox_addresses: Sequence[str], patient_name: str
) -> bytes:
    """The alert e-mail (French, then English): where to look, never what the message says."""
    who_fr = f" de {patient_name}" if patient_name else ""
    who_en = f" from {patient_name}" if patient_name else ""
    boxes = ", ".join(mailbox_addresses)
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"Message urgent possible{who_fr} / Possibly urgent message"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=hostname)
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "fr, en"
    message.set_content(
        f"Message urgent possible{who_fr}, reçu dans : {boxes}.\n\n"
        "Le tri automatique a relevé des mots qui peuvent signaler une urgence. Lisez ce "
        "message sans attendre dans la messagerie (il porte l'étiquette « Urgent ? ») et "
        "jugez-en vous-même : ce tri peut se tromper et ne pose aucun diagnostic.\n\n"
        "--\n"
        f"Possibly urgent message{who_en}, received in: {boxes}.\n\n"
        "The automatic triage found words that may signal an emergency. Read the message "
        "now in your mailbox (labelled « Urgent ? ») and judge for yourself: the triage may be "
        "wrong and makes no diagnosis.\n"
    )
    return message.as_bytes()


async def _alert_email(
    app: App, settings: TriageSettings, practice_id: int, boxes: Sequence[str], name: str
) -> str:
    sender = await patients.practice_sender(app, practice_id)
    rules = await recipient_policy.sender_of(app, sender)
    decision = await recipient_policy.decide(app, rules, settings.alert_email, purpose=Purpose.MAIL)
    local = decision.route is Route.LOCAL  # the name stays on this server, sealed
    raw = alert_message(
        hostname=app.settings.hostname,
        sender=sender,
        to=settings.alert_email,
        mailbox_addresses=boxes,
        patient_name=name if local else "",
    )
    await generated_mail.send_generated(
        app, raw, sender, settings.alert_email, purpose=Purpose.MAIL, source="triage"
    )
    return "local" if local else "sent"


async def send_alert(
    app: App, practice_id: int, mailbox_addresses: Sequence[str], patient_name: str, channel: str
) -> None:
    """The practice's urgent alert, if it chose one; failures are logged and audited, never
    raised (the message itself is stored and labelled whatever happens here)."""
    settings = await settings_of(app, practice_id)
    if not settings.alerts:
        return
    outcome: dict[str, str | int | bool | None] = {"channel": channel}
    if settings.alert_email:
        try:
            outcome["email"] = await _alert_email(
                app, settings, practice_id, mailbox_addresses, patient_name
            )
        except CaduceeError as error:
            log.warning("triage alert e-mail not sent: %s", error.message("en"))
            outcome["email"] = "refused"
        except Exception:
            log.exception("triage alert e-mail failed")
            outcome["email"] = "failed"
    if settings.alert_mobile:
        try:
            await sms.send_sms(
                app,
                settings.alert_mobile,
                alert_sms_text(mailbox_addresses),
                purpose="triage.alert",
            )
            outcome["sms"] = "sent"
        except CaduceeError as error:
            log.warning("triage alert SMS not sent: %s", error.message("en"))
            outcome["sms"] = "failed"
        except Exception:
            log.exception("triage alert SMS failed")
            outcome["sms"] = "failed"
    failed = any(v in ("refused", "failed") for v in outcome.values())
    await record(
        app.db,
        AuditEvent(
            actor="system",
            action="triage.alert",
            target=f"practice:{practice_id}",
            source="triage",
            result="failed" if failed else "ok",
            details=outcome,
        ),
    )


async def delivered(
    app: App,
    *,
    raw: bytes,
    sender: str,
    stored: Sequence[StoredMessage],
    copies: PatientCopies,
    now: datetime | None = None,
) -> None:
    """Once a patient's message is durably stored with its keywords: the urgent alert at once,
    then the auto-replies. Never raises."""
    if copies.triage.urgent:
        try:
            await send_alert(
                app, copies.practice_id, copies.addresses, copies.patient_name, copies.channel.value
            )
        except Exception:
            log.exception("triage alert failed")
    try:
        await auto_replies.after_delivery(
            app,
            raw=raw,
            sender=sender,
            stored=stored,
            channel=copies.channel,
            triage=copies.triage,
            patient=True,
            now=now,
        )
    except Exception:
        log.exception("auto-replies after a patient message failed")
