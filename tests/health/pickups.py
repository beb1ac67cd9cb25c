"""Builders for the pickup portal tests: a practice, its doctor, a message with an attachment,
and the doctor's Inbox as the practitioner reads it (through the POP3 maildrop service)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP

from caducee.app import App
from caducee.domain.model import Mailbox, Practice
from caducee.health import pickup
from caducee.services import maildrop
from tests.services.helpers import person, practice

DOCTOR = "dr.martin@cabinet.test"
PATIENT = "paul.durand@patient-mail.test"
MOBILE = "+33612345678"
MARKER = "Hémoglobine-glyquée-7,9-MARQUEUR"
PDF = b"%PDF-1.4\n% resultats " + MARKER.encode() + b"\n%%EOF\n"


@dataclass
class Cabinet:
    practice: Practice
    mailbox: Mailbox


async def cabinet(app: App) -> Cabinet:
    created = await practice(app)
    _account, mailbox = await person(app, DOCTOR)
    return Cabinet(created, mailbox)


def health_message(message_id: str = "<cr-1@cabinet.test>") -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = f"Dr Jeanne Martin <{DOCTOR}>"
    message["To"] = PATIENT
    message["Subject"] = f"Vos résultats {MARKER}"
    message["Message-ID"] = message_id
    message.set_content(f"Bonjour, voici vos résultats : {MARKER}.")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="bilan.pdf")
    return message.as_bytes()


async def deposit(
    app: App,
    cab: Cabinet,
    *,
    passphrase: str | None = None,
    patient: str = PATIENT,
    message_id: str = "<cr-1@cabinet.test>",
) -> pickup.Pickup:
    return await pickup.create_pickup(
        app,
        practice_id=cab.practice.id,
        sender_mailbox_id=cab.mailbox.id,
        sender_address=DOCTOR,
        patient_email=patient,
        patient_mobile=MOBILE,
        raw_message=health_message(message_id),
        passphrase=passphrase,
        source="192.0.2.1",
    )


def token_of(link: str) -> str:
    return link.rpartition("/portail/")[2]


async def inbox(app: App, login: str = DOCTOR) -> list[bytes]:
    drop = await maildrop.open_maildrop(app, login, "test")
    return [await maildrop.retrieve(app, drop, m) for m in drop.messages]
