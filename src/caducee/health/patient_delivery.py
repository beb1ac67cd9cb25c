"""How a message reaches a verified patient — whatever door it came in by (SMTP submission,
webmail, API: all go through ``flows.submission.submit``).

The message itself never travels to the patient's mailbox:

- ``retrait`` (default): it stays on the server (:func:`caducee.health.pickup.create_pickup`);
  the patient gets a notice without health content and opens it on the portal with a code
  sent by SMS;
- ``pdf`` / ``zip``: the message's text and attachments are put in an AES-256 encrypted PDF
  (or ZIP) sent with a notice without health content; the random password goes separately,
  by SMS to the patient's registered mobile.

Both need the patient's mobile: without it the sender is told to add it (nothing is sent).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, formataddr, make_msgid
from typing import TYPE_CHECKING

from caducee.app import App
from caducee.domain import charter as charter_rules
from caducee.domain import web_links
from caducee.domain.charter import Charter
from caducee.domain.recipient_route import Purpose
from caducee.domain.web_links import Page
from caducee.errors import PolicyRejected
from caducee.health import charter, pickup, sms
from caducee.health.generated_mail import send_generated
from caducee.health.patients import Patient
from caducee.services import practices, trace

if TYPE_CHECKING:  # pikepdf and pyzipper are loaded only when a PDF or ZIP is made
    from caducee.health.protected_attachments import Attachment


def _needs_mobile(app: App, patient: Patient) -> PolicyRejected:
    url = web_links.url(app.settings.public_base_url, Page.PATIENT_RECORD, patient_id=patient.id)
    return PolicyRejected(
        "Le numéro de mobile de ce patient manque : il faut l'envoyer par SMS le code ou le "
        f"mot de passe qui ouvre le message. Ajoutez-le à sa fiche : {url}",
        "This patient's mobile number is missing: the code or password that opens the message "
        f"is sent by SMS. Add it to the patient's record: {url}",
    )


def check_deliverable(app: App, patient: Patient) -> None:
    """Raise before anything is stored when the message could not reach ``patient`` (the
    pipeline checks every recipient first: all or nothing for the sender)."""
    if not patient.data.mobile:
        raise _needs_mobile(app, patient)


async def deliver_to_patient(
    app: App,
    *,
    practice_id: int,
    sender_mailbox_id: int,
    sender_address: str,
    patient: Patient,
    message: bytes,
    source: str,
    force_pickup: bool = False,
) -> str:
    """Deliver ``message`` to a verified patient in their preferred mode (the portal when
    ``force_pickup``: the practice's sensitive-data policy asked for it); returns the mode."""
    check_deliverable(app, patient)
    if force_pickup or patient.data.delivery_mode == "retrait":
        await pickup.create_pickup(
            app,
            practice_id=practice_id,
            sender_mailbox_id=sender_mailbox_id,
            sender_address=sender_address,
            patient_email=patient.data.email,
            patient_mobile=patient.data.mobile,
            raw_message=message,
            patient_id=patient.id,
            source=source,
        )
        return "retrait"
    await _send_protected(
        app,
        practice_id=practice_id,
        sender_mailbox_id=sender_mailbox_id,
        sender_address=sender_address,
        patient=patient,
        message=message,
        source=source,
    )
    return patient.data.delivery_mode


def contents_of(message: bytes) -> list[Attachment]:
    """The message's text (as ``message.txt``) and its attachments, for the protected file."""
    from caducee.health.protected_attachments import Attachment

    parsed = message_from_bytes(message, policy=policy.default)
    found: list[Attachment] = []
    body = parsed.get_body(preferencelist=("plain", "html"))
    if body is not None:
        text = body.get_content()
        subject = str(parsed.get("Subject", ""))
        found.append(
            Attachment("message.txt", "text/plain", f"Objet : {subject}\n\n{text}".encode())
        )
    for index, part in enumerate(parsed.iter_attachments(), 1):
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            name = part.get_filename() or f"piece-jointe-{index}"
            found.append(Attachment(name, part.get_content_type(), data))
    return found


def protected_notice(
    message: bytes,
    *,
    mode: str,
    password: str,
    practice_name: str,
    sender_address: str,
    patient_email: str,
    hostname: str,
    rules: Charter | None = None,
) -> tuple[bytes, str]:
    """The notice carrying ``message`` as an encrypted PDF (or ZIP, ``mode == "zip"``) opened by
    ``password``, and the original Message-ID (which the notice keeps, for the sender's trace).
    CPU-bound: run it in a worker thread."""
    from caducee.health import protected_attachments

    contents = contents_of(message)
    if mode == "zip":
        data = protected_attachments.encrypted_zip(contents, password)
        filename, maintype, subtype = "documents.zip", "application", "zip"
        how_fr, how_en = (
            protected_attachments.zip_notice("fr"),
            protected_attachments.zip_notice("en"),
        )
    else:
        data = protected_attachments.encrypted_pdf(
            contents, password, title=f"Message de {practice_name}"
        )
        filename, maintype, subtype = "documents.pdf", "application", "pdf"
        how_fr, how_en = (
            protected_attachments.pdf_notice("fr"),
            protected_attachments.pdf_notice("en"),
        )
    head = BytesHeaderParser(policy=policy.compat32).parsebytes(message)
    original_id = str(head.get("Message-ID", "")).strip()
    notice = EmailMessage(policy=policy.SMTP)
    notice["From"] = formataddr((practice_name, sender_address))
    notice["To"] = patient_email
    notice["Subject"] = f"Document de {practice_name}"
    notice["Date"] = format_datetime(datetime.now(UTC))
    notice["Message-ID"] = original_id or make_msgid(domain=hostname)
    notice["Content-Language"] = "fr, en"
    notice.set_content(
        f"Bonjour,\n\n{practice_name} vous transmet un document protégé par un mot de passe, "
        "envoyé séparément par SMS sur votre téléphone portable.\n"
        f"{how_fr}\n"
        "Par sécurité, ce courriel ne contient aucune information sur votre santé.\n\n"
        f"{charter_rules.short_text(rules or Charter(), 'fr')}\n\n"
        "— English —\n\n"
        f"Hello,\n\n{practice_name} sends you a document protected by a password, sent "
        f"separately by SMS to your mobile phone.\n{how_en}\n"
        "For your safety, this email contains no information about your health.\n\n"
        f"{charter_rules.short_text(rules or Charter(), 'en')}\n"
    )
    notice.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return notice.as_bytes(), original_id


async def _send_protected(
    app: App,
    *,
    practice_id: int,
    sender_mailbox_id: int,
    sender_address: str,
    patient: Patient,
    message: bytes,
    source: str,
) -> None:
    from caducee.health import protected_attachments

    practice = await practices.get_practice(app, practice_id)
    password = protected_attachments.generate_password()
    rules = await charter.charter_for_mailbox(app, sender_mailbox_id)
    # Parsing the message, encrypting the PDF or ZIP and encoding the notice are CPU work:
    # off the event loop, which serves every other session of the node.
    raw, original_id = await asyncio.to_thread(
        protected_notice,
        message,
        mode=patient.data.delivery_mode,
        password=password,
        practice_name=practice.name,
        sender_address=sender_address,
        patient_email=patient.data.email,
        hostname=app.settings.hostname,
        rules=rules,
    )
    await sms.send_sms(
        app,
        patient.data.mobile,
        f"{practice.name} : le mot de passe de votre document est {password}",
        actor=sender_address,
        purpose="document-password",
    )
    await send_generated(
        app,
        raw,
        sender_address,
        patient.data.email,
        mailbox_id=sender_mailbox_id,
        trace_key=trace.trace_key(original_id),
        source=source,
        purpose=Purpose.PATIENT_NOTICE,
    )
