"""Mail submitted by our own users (submission door, later webmail and API): RFC 6409 rules.

The authenticated account may send only as a mailbox it owns or is delegated to send for, both
in the envelope (MAIL FROM) and in the From header. Local recipients get their copy at once;
remote recipients go through the outbound queue, DKIM-signed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, getaddresses, make_msgid

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.errors import AccessDenied, InvalidInput, PolicyRejected, SenderNotAllowed
from caducee.health import trust_policy
from caducee.services import mail_auth, mailboxes, queue
from caducee.services.audit import AuditEvent, record
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo, Envelope
from caducee.services.inbound import check_recipient, our_domains
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
    return clean


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
    if not has_message_id:
        added += f"Message-ID: {make_msgid(domain=app.settings.hostname)}\r\n".encode()
    added += await trust_policy.mssante_headers(app, envelope.mail_from, raw)
    message = received_header(app.settings.hostname, client) + added + raw
    domains = await our_domains(app)
    await trust_policy.check_recipients(
        app, envelope.mail_from, [r.address for r in envelope.recipients], domains
    )
    local = [r.address for r in envelope.recipients if domain_of(r.address) in domains]
    remote = [r for r in envelope.recipients if domain_of(r.address) not in domains]
    # Local copies first: they can be refused (a full mailbox) and the client then retries
    # the whole message; queueing for remote recipients is the last step.
    if local:
        await deliver_local(app, message, local)
    if remote:
        signed = await mail_auth.dkim_sign_async(
            app.settings, message, domain_of(envelope.mail_from)
        )
        await queue.enqueue(
            app,
            signed,
            envelope.mail_from,
            remote,
            envid=envelope.envid,
            ret=envelope.ret,
            origin=QueueOrigin(actor=login, source=client.ip),
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
