"""Mail arriving from other servers (the MX door): recipient checks, then local delivery."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.domain.model import MailboxType, StoredMessage
from caducee.errors import (
    CaduceeError,
    InvalidInput,
    MailboxDisabled,
    NotFound,
    QuotaExceeded,
    TemporaryFailure,
)
from caducee.flows import antivirus
from caducee.health import auto_replies, mon_espace_sante, patient_triage, teletransmission
from caducee.services import cpu_pool, dsn, mail_auth, messages, metrics
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo, Envelope
from caducee.services.local_domains import our_domains
from caducee.services.received import received_header
from caducee.services.recipient_cache import recipient_cache


def unknown_recipient(address: str) -> NotFound:
    return NotFound(
        f"Destinataire inconnu : {address} n'existe pas sur ce serveur.",
        f"Unknown recipient: {address} does not exist on this server.",
    )


async def check_recipient(app: App, address: str, size_hint: int = 0) -> str:
    """RCPT TO on the MX: the normalised address if we accept mail for it.

    Raises :class:`NotFound` (SMTP 550 5.1.1) for an address that is not one of our mailboxes,
    whatever the domain (we are not an open relay), and :class:`QuotaExceeded` (452 4.2.2) when
    the mailbox cannot take ``size_hint`` more bytes (RFC 1870 SIZE, or 0) — except a
    télétransmission mailbox, which never refuses a return (issue 15: it archives its old
    acknowledged lots instead, :func:`caducee.health.teletransmission.make_room`).
    """
    try:
        clean = normalize_address(address)
    except InvalidInput:
        raise unknown_recipient(address) from None
    mailbox = await recipient_cache(app).mailbox(app, clean)
    if mailbox is None:
        raise unknown_recipient(clean)
    if mailbox.disabled and messages.refuses_disabled(app):
        raise MailboxDisabled(clean)  # 550 5.2.1 (RFC 3463 X.2.1); by default still received
    full = mailbox.used_bytes + max(size_hint, 1) > mailbox.quota_bytes
    if full and mailbox.type is not MailboxType.TLT:
        raise QuotaExceeded(
            f"La boîte {clean} est pleine ; réessayez plus tard.",
            f"Mailbox {clean} is full; try again later.",
        )
    return clean


async def accept_recipient(app: App, address: str, size_hint: int = 0) -> str:
    """RCPT TO on the MX: :func:`check_recipient`, a refusal counted (metrics)."""
    try:
        return await check_recipient(app, address, size_hint)
    except CaduceeError as error:
        metrics.MESSAGES_REFUSED.labels("mx", metrics.reason_of(error)).inc()
        raise


async def receive(app: App, envelope: Envelope, raw: bytes, client: ClientInfo) -> None:
    """A message accepted by the MX: :func:`deliver`, received or refused counted once."""
    try:
        await deliver(app, envelope, raw, client)
    except CaduceeError as error:
        metrics.MESSAGES_REFUSED.labels("mx", metrics.reason_of(error)).inc()
        raise
    metrics.MESSAGES_RECEIVED.labels("mx").inc()


async def deliver(app: App, envelope: Envelope, raw: bytes, client: ClientInfo) -> None:
    """Check SPF, DKIM and DMARC, then deliver a message accepted by the MX.

    Mail claiming one of our own domains must authenticate (else PolicyRejected, SMTP 550
    5.7.1; TemporaryFailure, 451, when DNS could not tell); a DMARC ``p=reject`` failure is
    refused; ``p=quarantine`` goes to Junk. Forged Authentication-Results claiming our host are
    removed (RFC 8601 §5), ours and a trace header (RFC 5321 §4.4) prepended. Returns once every
    copy is durably stored.
    """
    await mon_espace_sante.check_inbound(app, envelope.mail_from, raw)
    verdict = await mail_auth.evaluate_inbound(
        app.settings, raw, client.ip, client.helo, envelope.mail_from
    )
    if verdict.rejects_local_spoof(await our_domains(app)):
        if verdict.temporary_failure:
            raise TemporaryFailure(
                "Vérification de l'expéditeur impossible pour l'instant (DNS) ; réessayez.",
                "Cannot verify the sender right now (DNS); try again later.",
            )
        raise mail_auth.spoof_error()
    folder = "INBOX"
    if verdict.dmarc_policy == "reject":
        raise mail_auth.dmarc_reject_error(verdict.dmarc.from_domain)
    recipients = [r.address for r in envelope.recipients]
    cache = recipient_cache(app)
    boxes = [cache.cached(address) or await cache.mailbox(app, address) for address in recipients]
    await antivirus.check(
        app,
        raw,
        door="mx",
        source=client.ip,
        teletransmission=all(b is not None and b.type is MailboxType.TLT for b in boxes),
    )
    if verdict.dmarc_policy == "quarantine":
        folder = "Junk"
    single = recipients[0] if len(recipients) == 1 else None
    stamped = await cpu_pool.copying(
        len(raw),
        mail_auth.stamped,
        received_header(app.settings.hostname, client, single) + verdict.header_line(),
        raw,
        app.settings.hostname,
    )
    tlt = [box for box in boxes if box is not None and box.type is MailboxType.TLT]
    tlt_addresses = {box.address for box in tlt}
    others = [a for a in recipients if a not in tlt_addresses]
    # A registered patient's message is classified before it is stored, so that its copies in
    # that practice's mailboxes carry the triage keywords (issue 16).
    patient_mail = await patient_triage.patient_practices(
        app, envelope.mail_from, raw, [box for box in boxes if box is not None]
    )
    stored_others: list[StoredMessage] = []
    if others:  # first: the one delivery that may be refused (a full mailbox), all or nothing
        stored_others = await deliver_local(
            app,
            stamped,
            others,
            folder=folder,
            sender=envelope.mail_from,
            source=client.ip,
            keywords={a: p.keywords for p in patient_mail for a in p.addresses},
        )
    if tlt:
        # A télétransmission mailbox's returns are never quarantined nor refused for quota
        # (nothing is lost): into its Inbox, past its quota if need be; then its old
        # acknowledged lots are archived to make room, and its owner told.
        stored = await deliver_local(
            app,
            stamped,
            [box.address for box in tlt],
            folder="INBOX",
            sender=envelope.mail_from,
            source=client.ip,
            past_quota=True,
        )
        await teletransmission.record_returns(app, stamped, stored, tlt)
        await teletransmission.after_delivery(app, [box.id for box in tlt])
    await dsn.report_local_delivery(app, envelope, stamped, recipients)
    for copies in patient_mail:  # the urgent alert and the auto-replies to the patient
        ids = {box.id for box in boxes if box is not None and box.address in copies.addresses}
        await patient_triage.delivered(
            app,
            raw=stamped,
            sender=envelope.mail_from,
            stored=[m for m in stored_others if m.mailbox_id in ids],
            copies=copies,
        )
    patient_ids = {
        box.id
        for box in boxes
        if box is not None and any(box.address in c.addresses for c in patient_mail)
    }
    others_stored = [m for m in stored_others if m.mailbox_id not in patient_ids]
    if others_stored and folder == "INBOX":  # never to quarantined mail (backscatter)
        await auto_replies.after_mx_delivery(
            app,
            raw=stamped,
            sender=envelope.mail_from,
            stored=others_stored,
            boxes=[box for box in boxes if box is not None and box.type is not MailboxType.TLT],
        )


def is_local_domain(domains: set[str], address: str) -> bool:
    return domain_of(address.lower()) in domains
