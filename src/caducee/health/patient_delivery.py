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

from caducee.app import App
from caducee.domain import web_links
from caducee.domain.protected_notice import generate_password, protected_notice
from caducee.domain.recipient_route import Purpose
from caducee.domain.web_links import Page
from caducee.errors import PolicyRejected
from caducee.health import charter, pickup, sms
from caducee.health.generated_mail import send_generated
from caducee.health.patients import Patient
from caducee.services import cpu_pool, practices, trace


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
    practice = await practices.get_practice(app, practice_id)
    password = generate_password()
    rules = await charter.charter_for_mailbox(app, sender_mailbox_id)
    # Parsing the message, encrypting the PDF or ZIP and encoding the notice are CPU work: off
    # the event loop, which serves every other session of the node; a big message in a worker
    # process (pikepdf and pyzipper hold the interpreter lock: 1.5 s for a 15 MB attachment).
    raw, original_id = await cpu_pool.run_sized(
        len(message),
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
