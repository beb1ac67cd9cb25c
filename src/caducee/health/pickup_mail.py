"""The messages the pickup portal writes: the patient's notice (no health content), the
practice's alert when a link locks, and the patient's reply as a normal RFC 5322 message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from zoneinfo import ZoneInfo

from caducee.domain import charter as charter_rules
from caducee.domain import mail_display
from caducee.domain.charter import Charter

PARIS = ZoneInfo("Europe/Paris")


def _paris(when: datetime) -> str:
    return when.astimezone(PARIS).strftime("%d/%m/%Y")


def _message(hostname: str, sender: str, to: str, subject: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=hostname)
    return message


def notice(
    *,
    hostname: str,
    practice_name: str,
    sender_address: str,
    patient_email: str,
    link: str,
    expires_at: datetime,
    passphrase: bool,
    charter: Charter | None = None,
    charter_link: str = "",
) -> bytes:
    """The email telling the patient a message waits on the portal: practice name, a generic
    subject, the link, the short form of the practice's charter (with the link to its full
    form); never the message's subject or content."""
    message = _message(
        hostname,
        formataddr((practice_name, sender_address)),
        patient_email,
        f"Nouveau message de {practice_name}",
    )
    message["Content-Language"] = "fr, en"
    message["Auto-Submitted"] = "auto-generated"
    until = _paris(expires_at)
    how_fr = (
        "Munissez-vous du mot de passe que votre praticien vous a remis, ou demandez un code "
        "par SMS."
        if passphrase
        else "Un code à usage unique vous sera envoyé par SMS sur votre téléphone portable."
    )
    how_en = (
        "Have the password your practitioner gave you at hand, or ask for a code by SMS."
        if passphrase
        else "A one-time code will be sent by SMS to your mobile phone."
    )
    rules = charter or Charter()
    charter_fr = charter_rules.short_text(rules, "fr", charter_link)
    charter_en = charter_rules.short_text(rules, "en", charter_link)
    message.set_content(
        f"Bonjour,\n\n{practice_name} vous a transmis un message par sa messagerie sécurisée "
        "de santé.\n"
        f"Pour le lire, ouvrez ce lien (valable jusqu'au {until}) :\n\n{link}\n\n"
        f"{how_fr}\n"
        "Par sécurité, ce courriel ne contient aucune information sur votre santé. Si vous "
        "n'attendiez pas de message de ce cabinet, ignorez ce courriel.\n\n"
        f"{charter_fr}\n\n"
        "— English —\n\n"
        f"Hello,\n\n{practice_name} sent you a message through its secure health messaging.\n"
        f"To read it, open this link (valid until {until}):\n\n{link}\n\n"
        f"{how_en}\n"
        "For your safety, this email contains no information about your health. If you did "
        "not expect a message from this practice, ignore this email.\n\n"
        f"{charter_en}\n"
    )
    return message.as_bytes()


def lock_alert(
    *, hostname: str, mailbox_address: str, patient_email: str, created_at: datetime
) -> bytes:
    """The alert put into the sender's Inbox when a pickup link locks (5 wrong codes)."""
    message = _message(
        hostname,
        formataddr(("Caducée", f"no-reply@{hostname}")),
        mailbox_address,
        "Portail patient : lien verrouillé / patient portal: link locked",
    )
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"Le lien du portail patient envoyé le {_paris(created_at)} à {patient_email} a été "
        "verrouillé après 5 codes erronés. Le message n'a pas été consulté par cette personne "
        "depuis. Si le patient vous contacte, renvoyez-lui le message (un nouveau lien lui sera "
        "adressé) ; sinon, signalez l'incident à votre administrateur.\n\n"
        f"The patient portal link sent on {_paris(created_at)} to {patient_email} was locked "
        "after 5 wrong codes. If the patient contacts you, send the message again (a new link "
        "will be sent); otherwise report the incident to your administrator.\n"
    )
    return message.as_bytes()


@dataclass(frozen=True)
class ReplyFile:
    filename: str
    content_type: str
    data: bytes


def reply(
    *,
    hostname: str,
    patient_email: str,
    mailbox_address: str,
    original: bytes,
    text: str,
    files: Sequence[ReplyFile],
) -> bytes:
    """The patient's reply, From the patient's address, threaded under the original."""
    shown = mail_display.display(original)
    subject = shown.subject or ""
    if not subject.lower().startswith(("re:", "re :")):
        subject = f"Re: {subject}".strip()
    message = _message(hostname, patient_email, mailbox_address, subject)
    if shown.message_id:
        message["In-Reply-To"] = shown.message_id
        message["References"] = " ".join([*shown.references, shown.message_id])
    message["X-Caducee-Portal"] = "reply"
    message.set_content(text or "(réponse sans texte / reply without text)")
    for file in files:
        maintype, _, subtype = file.content_type.partition("/")
        message.add_attachment(
            file.data, maintype=maintype, subtype=subtype, filename=file.filename
        )
    return message.as_bytes()
