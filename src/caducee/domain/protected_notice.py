"""The notice that carries a message to a patient as an AES-256 PDF or ZIP (the ``pdf`` and
``zip`` delivery modes of :mod:`caducee.health.patient_delivery`): pure and CPU-bound (parsing
the message, converting and encrypting its attachments), so that a big one is built in a
worker process (``services.cpu_pool``, issue 17)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, formataddr, make_msgid
from typing import TYPE_CHECKING

from caducee.domain import charter as charter_rules
from caducee.domain.charter import Charter
from caducee.domain.mime_structure import header_end

if TYPE_CHECKING:  # pikepdf and pyzipper are loaded only when a PDF or ZIP is made
    from caducee.domain.protected_attachments import Attachment


#: Letters and digits that cannot be mistaken for one another (no 0/O, 1/I/L).
PASSWORD_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # noqa: S105 (an alphabet)
PASSWORD_GROUPS = 5
PASSWORD_GROUP_LENGTH = 4  # 20 characters of 31: 99 bits


def generate_password() -> str:
    """A random password easy to read in an SMS and to type: ``KX7P-93MF-…`` (5 groups of 4
    characters from a 31-character alphabet without look-alikes: 99 bits)."""
    groups = [
        "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_LENGTH))
        for _ in range(PASSWORD_GROUPS)
    ]
    return "-".join(groups)


def contents_of(message: bytes) -> list[Attachment]:
    """The message's text (as ``message.txt``) and its attachments, for the protected file."""
    from caducee.domain.protected_attachments import Attachment

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
    CPU-bound (1.5 s for a 15 MB attachment): run it in a worker process
    (``services.cpu_pool``)."""
    from caducee.domain import protected_attachments

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
    head = BytesHeaderParser(policy=policy.compat32).parsebytes(message[: header_end(message)])
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
