"""Mail submitted by our own users (submission door, later webmail and API): RFC 6409 rules.

The authenticated account may send only as a mailbox it owns or is delegated to send for, both
in the envelope (MAIL FROM) and in the From header. Local recipients get their copy at once;
remote recipients go through the outbound queue, DKIM-signed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, getaddresses, make_msgid

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.domain.model import Mailbox
from caducee.errors import AccessDenied, InvalidInput, NotFound, PolicyRejected, SenderNotAllowed
from caducee.health import (
    dlp,
    mon_espace_sante,
    patient_delivery,
    patient_settings,
    patients,
    trust_list,
    trust_policy,
)
from caducee.services import dsn, mail_auth, mailboxes, queue, trace
from caducee.services.audit import AuditEvent, record
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.services.inbound import check_recipient
from caducee.services.local_domains import our_domains
from caducee.services.queue import QueueOrigin
from caducee.services.received import received_header


async def authorize_sender(app: App, login: str, mail_from: str, source: str) -> str:
    """MAIL FROM on the submission door: the normalised sender address, or SenderNotAllowed."""
    if not mail_from:
        raise SenderNotAllowed(
            "L'expéditeur vide (<>) est réservé aux avis de non-remise du serveur.",
            "The null sender (<>) is reserved for the server's delivery reports.",
        )
    try:
        address = normalize_address(mail_from)
        await mailboxes.open_mailbox(app, login, address, need_send=True, source=source)
    except (AccessDenied, InvalidInput):
        raise SenderNotAllowed(
            f"Le compte {login} n'a pas le droit d'envoyer en tant que {mail_from} : "
            "utilisez votre propre adresse ou une boîte qui vous est déléguée avec envoi.",
            f"Account {login} may not send as {mail_from}: use your own address or a mailbox "
            "delegated to you with send rights.",
        ) from None
    return address


async def check_submission_recipient(
    app: App, address: str, domains: set[str], sender: str = ""
) -> str:
    """RCPT TO on the submission door: local recipients must exist; remote ones are queued,
    unless the sender is a trust-space mailbox and the recipient outside it."""
    clean = normalize_address(address)
    if domain_of(clean) in domains:
        return await check_recipient(app, clean)
    await trust_policy.check_recipients(app, sender, [clean], domains)
    box = await _sender_mailbox(app, sender)
    if box is not None:
        verdict = await patients.recipient_verdict(app, box.practice_id, clean)
        if verdict.refused:
            raise PolicyRejected(*patients.refusal_text(app, verdict, clean))
    return clean


async def sensitive_findings(
    app: App, sender: str, recipients: list[str], raw: bytes
) -> list[dlp.Finding]:
    """What the pipeline's sensitive-data check would find in ``raw`` (the webmail shows it
    before sending, so that the sender can edit): [] when no recipient is a patient or outside
    the trust space, or when the sender is not one of our mailboxes."""
    box = await _sender_mailbox(app, sender)
    if box is None:
        return []
    domains = await our_domains(app)
    concerned = False
    for address in recipients:
        domain = domain_of(address)
        outside = domain not in domains and not await trust_list.is_listed(app, domain)
        verdict = await patients.recipient_verdict(app, box.practice_id, address)
        if outside or verdict.patient is not None:
            concerned = True
    if not concerned:
        return []
    settings = await patient_settings.settings_of(app, box.practice_id)
    return dlp.scan_message(raw, settings.term_list())


async def _sensitive_data_check(
    app: App,
    box: Mailbox,
    message: bytes,
    others: tuple[EnvelopeRecipient, ...],
    patient_list: list[patients.Patient],
    domains: set[str],
) -> tuple[bytes, bool]:
    """Sensitive data in a message leaving for a patient or outside the trust space: what the
    practice's policy says (warn with a header, block, or force the secure pickup portal).
    Returns the message (with the warning header if any) and whether pickup is forced."""
    outside = [
        r.address
        for r in others
        if domain_of(r.address) not in domains
        and not await trust_list.is_listed(app, domain_of(r.address))
    ]
    if not outside and not patient_list:
        return message, False
    settings = await patient_settings.settings_of(app, box.practice_id)
    decision = dlp.decide(settings.dlp_policy, dlp.scan_message(message, settings.term_list()))
    if decision.blocked:
        raise PolicyRejected(decision.reason_fr, decision.reason_en)
    if decision.secure_pickup and outside:
        raise PolicyRejected(
            f"{decision.reason_fr} Or le portail ne sert que les patients du registre : "
            f"{', '.join(outside[:5])} ne peut pas recevoir ce message.",
            f"{decision.reason_en} But the portal serves only patients of the registry: "
            f"{', '.join(outside[:5])} cannot receive this message.",
        )
    if decision.header:
        message = f"{dlp.WARNING_HEADER}: {decision.header}\r\n".encode() + message
        key = trace.trace_key(_message_id(message))
        if key is not None:  # the sender sees it in the message's trace
            detail = ", ".join(f"{k}={n}" for k, n in dlp.summary(decision.findings).items())
            async with app.db.write() as conn:
                for address in [*outside, *(p.data.email for p in patient_list)]:
                    await trace.record(app, conn, box.id, key, address, "sensitive", detail)
    return message, decision.secure_pickup


async def _sender_mailbox(app: App, address: str) -> Mailbox | None:
    try:
        return await mailboxes.get_mailbox(app, address)
    except (NotFound, InvalidInput):
        return None


async def _patient_recipients(
    app: App, box: Mailbox | None, recipients: tuple[EnvelopeRecipient, ...]
) -> tuple[tuple[EnvelopeRecipient, ...], list[patients.Patient]]:
    """Split the recipients: registered patients (verified, else refused) and the others."""
    if box is None:
        return recipients, []
    kept: list[EnvelopeRecipient] = []
    found: list[patients.Patient] = []
    for recipient in recipients:
        verdict = await patients.recipient_verdict(app, box.practice_id, recipient.address)
        if verdict.refused:
            raise PolicyRejected(*patients.refusal_text(app, verdict, recipient.address))
        if verdict.patient is not None:
            found.append(verdict.patient)
        else:
            kept.append(recipient)
    return tuple(kept), found


def _message_id(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    return str(headers.get("Message-ID") or "").strip()


async def _our_mailbox(app: App, address: str) -> int | None:
    """The id of our mailbox ``address`` (the sender's trace lives there), if it is ours."""
    try:
        return (await mailboxes.get_mailbox(app, address)).id
    except (NotFound, InvalidInput):
        return None


def _header_from_addresses(raw: bytes) -> tuple[list[str], bool, bool]:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    from_values = headers.get_all("From") or []
    sender_values = headers.get_all("Sender") or []
    addresses = [a.lower() for _, a in getaddresses([*from_values, *sender_values]) if a]
    return addresses, headers.get("Message-ID") is not None, headers.get("Date") is not None


async def submit(app: App, login: str, envelope: Envelope, raw: bytes, client: ClientInfo) -> None:
    """Accept a submitted message; returns once it is durably stored or queued."""
    addresses, has_message_id, has_date = _header_from_addresses(raw)
    if not addresses:
        raise PolicyRejected(
            "Le message n'a pas d'en-tête From : votre logiciel de messagerie est mal configuré.",
            "The message has no From header: your mail client is misconfigured.",
        )
    for address in dict.fromkeys(addresses):
        await authorize_sender(app, login, address, client.ip)
    # RFC 6409 §8.1 and §8.3: the MSA may add a missing Date and Message-ID.
    added = b""
    if not has_date:
        added += f"Date: {format_datetime(datetime.now(UTC))}\r\n".encode()
    message_id = _message_id(raw)
    if not has_message_id:
        message_id = make_msgid(domain=app.settings.hostname)
        added += f"Message-ID: {message_id}\r\n".encode()
    trust_policy.check_mss_headers(raw)
    added += await trust_policy.mssante_headers(app, envelope.mail_from, raw)
    message = received_header(app.settings.hostname, client) + added + raw
    domains = await our_domains(app)
    await trust_policy.check_recipients(
        app, envelope.mail_from, [r.address for r in envelope.recipients], domains
    )
    sender_mailbox = await _sender_mailbox(app, envelope.mail_from) if envelope.mail_from else None
    others, patient_list = await _patient_recipients(app, sender_mailbox, envelope.recipients)
    force_pickup = False
    if sender_mailbox is not None:
        message, force_pickup = await _sensitive_data_check(
            app, sender_mailbox, message, others, patient_list, domains
        )
    if patient_list:
        assert sender_mailbox is not None
        envelope = replace(envelope, recipients=others)
        for patient in patient_list:  # the message itself never goes to the patient's mailbox
            await patient_delivery.deliver_to_patient(
                app,
                practice_id=sender_mailbox.practice_id,
                sender_mailbox_id=sender_mailbox.id,
                sender_address=sender_mailbox.address,
                patient=patient,
                message=message,
                source=client.ip,
                force_pickup=force_pickup,
            )
    local = [r.address for r in envelope.recipients if domain_of(r.address) in domains]
    remote = [r for r in envelope.recipients if domain_of(r.address) not in domains]
    # Local copies first: they can be refused (a full mailbox) and the client then retries
    # the whole message; queueing for remote recipients is the last step.
    key = trace.trace_key(message_id)
    sender_box = await _our_mailbox(app, envelope.mail_from) if key else None
    if local:
        await deliver_local(app, message, local)
        await dsn.report_local_delivery(app, envelope, message, local)
        if sender_box is not None and key is not None:
            async with app.db.write() as conn:
                for address in local:
                    await trace.record(app, conn, sender_box, key, address, "delivered", "local")
    if remote:
        # A null reverse-path (a read receipt) is signed for its From domain.
        signing_domain = domain_of(envelope.mail_from) if envelope.mail_from else ""
        signed = await mail_auth.dkim_sign_async(
            app.settings, message, signing_domain or domain_of(addresses[0])
        )
        await queue.enqueue(
            app,
            signed,
            envelope.mail_from,
            remote,
            envid=envelope.envid,
            ret=envelope.ret,
            origin=QueueOrigin(actor=login, source=client.ip, mailbox_id=sender_box),
            trace_key=key if sender_box is not None else None,
        )
        if sender_box is not None:
            await mon_espace_sante.record_sent(
                app, sender_box, message_id, [r.address for r in remote], message
            )
    await record(
        app.db,
        AuditEvent(
            actor=login,
            action="mail.submit",
            target=envelope.mail_from,
            source=client.ip,
            details={"local": len(local), "remote": len(remote), "size": len(message)},
        ),
    )
