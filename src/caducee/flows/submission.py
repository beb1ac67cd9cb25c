"""Mail submitted by our own users (submission door, later webmail and API): RFC 6409 rules.

The authenticated account may send only as a mailbox it owns or is delegated to send for, both
in the envelope (MAIL FROM) and in the From header. Local recipients get their copy at once;
remote recipients go through the outbound queue, DKIM-signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, getaddresses, make_msgid

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.domain.mime_structure import header_end
from caducee.domain.model import Mailbox
from caducee.domain.recipient_route import Route
from caducee.errors import (
    AccessDenied,
    CaduceeError,
    InvalidInput,
    LimitReached,
    MessageTooLarge,
    PolicyRejected,
    SenderNotAllowed,
)
from caducee.flows import antivirus
from caducee.flows.inbound import check_recipient
from caducee.health import (
    auto_replies,
    dlp,
    mon_espace_sante,
    patient_delivery,
    patient_settings,
    recipient_policy,
    teletransmission,
    trust_policy,
)
from caducee.services import cpu_pool, dsn, mailboxes, metrics, outgoing, trace
from caducee.services.audit import AuditEvent, append
from caducee.services.envelope import MAX_RECIPIENTS, ClientInfo, Envelope
from caducee.services.queue import QueueOrigin
from caducee.services.received import received_header


def door_of(client: ClientInfo) -> str:
    """The door a submission came by (metrics label): the webmail, the API or SMTP."""
    if client.protocol == "HTTPS":
        return client.helo if client.helo in ("webmail", "api") else "webmail"
    return "submission"


def _refused(door: str, error: CaduceeError) -> None:
    metrics.MESSAGES_REFUSED.labels(door, metrics.reason_of(error)).inc()


async def authorize_sender(app: App, login: str, mail_from: str, source: str) -> str:
    """MAIL FROM on the submission door: the normalised sender address, or SenderNotAllowed."""
    try:
        return (await _authorize(app, login, mail_from, source)).mailbox.address
    except CaduceeError as error:
        _refused("submission", error)
        raise


async def _authorize(app: App, login: str, mail_from: str, source: str) -> mailboxes.Access:
    """The one check that ``login`` may send as ``mail_from``; its access to that mailbox."""
    if not mail_from:
        raise SenderNotAllowed(
            "L'expéditeur vide (<>) est réservé aux avis de non-remise du serveur.",
            "The null sender (<>) is reserved for the server's delivery reports.",
        )
    try:
        address = normalize_address(mail_from)
        return await mailboxes.open_mailbox(app, login, address, need_send=True, source=source)
    except (AccessDenied, InvalidInput):
        raise SenderNotAllowed(
            f"Le compte {login} n'a pas le droit d'envoyer en tant que {mail_from} : "
            "utilisez votre propre adresse ou une boîte qui vous est déléguée avec envoi.",
            f"Account {login} may not send as {mail_from}: use your own address or a mailbox "
            "delegated to you with send rights.",
        ) from None


async def check_submission_recipient(
    app: App, address: str, domains: set[str], sender: str = ""
) -> str:
    """RCPT TO on the submission door: the recipient rule of the sender's mailbox
    (:mod:`caducee.health.recipient_policy`); local recipients must exist."""
    try:
        return await _check_submission_recipient(app, address, domains, sender)
    except CaduceeError as error:
        _refused("submission", error)
        raise


async def _check_submission_recipient(
    app: App, address: str, domains: set[str], sender: str = ""
) -> str:
    clean = normalize_address(address)
    rules = await recipient_policy.sender_of(app, sender)
    decision = await recipient_policy.decide(app, rules, clean, domains=domains)
    refused = recipient_policy.refusal(rules, [decision])
    if refused is not None:
        raise refused
    if decision.route is Route.LOCAL:
        return await check_recipient(app, clean)
    return clean


async def sensitive_findings(
    app: App, sender: str, recipients: list[str], raw: bytes
) -> list[dlp.Finding]:
    """What the pipeline's sensitive-data check would find in ``raw`` (the webmail shows it
    before sending, so that the sender can edit): [] when no recipient is a patient or outside
    the trust space, or when the sender is not one of our mailboxes."""
    rules = await recipient_policy.sender_of(app, sender)
    if rules.mailbox is None:
        return []
    decisions = await recipient_policy.decide_all(app, rules, recipients)
    if not any(d.leaves_trust_space for d in decisions):
        return []
    assert rules.settings is not None
    return await dlp.scan(raw, rules.settings.term_list())


@dataclass(frozen=True)
class _SensitiveVerdict:
    message: bytes  # with the warning header, if any
    force_pickup: bool
    trace_detail: str  # what the sender's trace records ("" when nothing was found)


async def _sensitive_data_check(
    settings: patient_settings.PatientSettings,
    message: bytes,
    decisions: list[recipient_policy.Decision],
) -> _SensitiveVerdict:
    """Sensitive data in a message leaving for a patient or outside the trust space: what the
    practice's policy says (warn with a header, block, or force the secure pickup portal)."""
    outside = [d.address for d in decisions if d.route is Route.OUTSIDE]
    if not any(d.leaves_trust_space for d in decisions):
        return _SensitiveVerdict(message, False, "")
    found = await dlp.scan(message, settings.term_list())
    decision = dlp.decide(settings.dlp_policy, found)
    if decision.blocked:
        raise PolicyRejected(decision.reason_fr, decision.reason_en)
    if decision.secure_pickup and outside:
        raise PolicyRejected(
            f"{decision.reason_fr} Or le portail ne sert que les patients du registre : "
            f"{', '.join(outside[:5])} ne peut pas recevoir ce message.",
            f"{decision.reason_en} But the portal serves only patients of the registry: "
            f"{', '.join(outside[:5])} cannot receive this message.",
        )
    detail = ""
    if decision.header:
        message = await cpu_pool.concat(
            f"{dlp.WARNING_HEADER}: {decision.header}\r\n".encode(), message
        )
        detail = ", ".join(f"{k}={n}" for k, n in dlp.summary(decision.findings).items())
    return _SensitiveVerdict(message, decision.secure_pickup, detail)


@dataclass(frozen=True)
class SubmittedHeaders:
    """What the pipeline reads in a submitted message's header, parsed once."""

    senders: tuple[str, ...]  # From and Sender addresses, lower-cased, in order
    has_message_id: bool
    message_id: str  # "" when absent or empty
    has_date: bool
    mss_mes: tuple[str, ...]  # X-MSS-MES values
    has_mss_nil: bool
    subject: str  # as written (a télétransmission lot's subject names the lot)

    @classmethod
    def parse(cls, raw: bytes) -> SubmittedHeaders:
        # the header block only: the parser would otherwise decode and split the whole message
        # on the event loop (100 ms for a 20 MB one, issue 17)
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[: header_end(raw)])
        values = [*(headers.get_all("From") or []), *(headers.get_all("Sender") or [])]
        return cls(
            senders=tuple(dict.fromkeys(a.lower() for _, a in getaddresses(values) if a)),
            has_message_id=headers.get("Message-ID") is not None,
            message_id=str(headers.get("Message-ID") or "").strip(),
            has_date=headers.get("Date") is not None,
            mss_mes=tuple(str(v) for v in headers.get_all("X-MSS-MES") or []),
            has_mss_nil=headers.get("X-MSS-NIL") is not None,
            subject=str(headers.get("Subject") or "").strip(),
        )


@dataclass(frozen=True)
class SubmissionContext:
    """One submission as the pipeline's steps see it, built once by :func:`build_context`:
    the header parsed once, the acting mailbox looked up once (with its rules), the
    Message-ID (the message's, or the one the MSA adds, RFC 6409 §8.3) chosen once."""

    login: str
    envelope: Envelope
    client: ClientInfo
    raw: bytes
    headers: SubmittedHeaders
    #: The mailbox the message leaves in the name of: the envelope sender, or the From address
    #: for a null reverse-path (a read receipt) — held to the same recipient rule either way.
    acting: str
    rules: recipient_policy.Sender
    message_id: str

    @property
    def mailbox(self) -> Mailbox | None:
        return self.rules.mailbox


async def build_context(
    app: App, login: str, envelope: Envelope, raw: bytes, client: ClientInfo
) -> SubmissionContext:
    """Parse the header and check who sends (RFC 6409 §6.1: the account may send as every
    From and Sender address), looking each mailbox up once."""
    headers = SubmittedHeaders.parse(raw)
    if not headers.senders:
        raise PolicyRejected(
            "Le message n'a pas d'en-tête From : votre logiciel de messagerie est mal configuré.",
            "The message has no From header: your mail client is misconfigured.",
        )
    authorized = {
        address: await _authorize(app, login, address, client.ip) for address in headers.senders
    }
    acting = envelope.mail_from or headers.senders[0]
    found = authorized.get(acting.lower())
    if found is not None:
        rules = await recipient_policy.rules_of(app, found.mailbox)
    else:
        rules = await recipient_policy.sender_of(app, acting)
    message_id = headers.message_id
    if not headers.has_message_id:
        message_id = make_msgid(domain=app.settings.hostname)
    return SubmissionContext(login, envelope, client, raw, headers, acting, rules, message_id)


def check_limits(app: App, envelope: Envelope, raw: bytes) -> None:
    """The size and recipient limits of every door, checked before anything is stored."""
    if not envelope.recipients:
        raise InvalidInput("Indiquez au moins un destinataire.", "Give at least one recipient.")
    if len(envelope.recipients) > MAX_RECIPIENTS:
        raise LimitReached(
            f"Trop de destinataires ({len(envelope.recipients)} ; {MAX_RECIPIENTS} au plus) : "
            "envoyez le message en plusieurs fois.",
            f"Too many recipients ({len(envelope.recipients)}; at most {MAX_RECIPIENTS}): send "
            "the message in several parts.",
        )
    limit = app.settings.max_message_bytes
    if len(raw) > limit:
        raise MessageTooLarge(
            f"Message trop volumineux ({_megabytes(len(raw))} ; {_megabytes(limit)} au plus, "
            "pièces jointes encodées comprises) : allégez les pièces jointes.",
            f"Message too large ({_megabytes(len(raw))}; at most {_megabytes(limit)}, encoded "
            "attachments included): make the attachments smaller.",
        )


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} Mo".replace(".", ",")


async def submit(app: App, login: str, envelope: Envelope, raw: bytes, client: ClientInfo) -> None:
    """Accept a submitted message (:func:`_submit`), sent or refused counted once per door."""
    door = door_of(client)
    try:
        await _submit(app, login, envelope, raw, client)
    except CaduceeError as error:
        _refused(door, error)
        raise
    metrics.MESSAGES_SENT.labels(door).inc()


async def _submit(app: App, login: str, envelope: Envelope, raw: bytes, client: ClientInfo) -> None:
    """Accept a submitted message; returns once it is durably stored or queued.

    All or nothing for the sender, in this order: every check (limits, sender, recipient rule,
    patients' channel, sensitive data), then every store that can be refused (local copies:
    a full mailbox), then the patient handoff, then the outbound queue. A refusal at a check
    leaves nothing behind, so the client's retry cannot duplicate a copy."""
    # 1. Every check.
    check_limits(app, envelope, raw)
    context = await build_context(app, login, envelope, raw, client)
    acting, rules, message_id = context.acting, context.rules, context.message_id
    decisions = await recipient_policy.decide_all(
        app, rules, [r.address for r in envelope.recipients]
    )
    refused = recipient_policy.refusal(rules, decisions)
    if refused is not None:
        raise refused
    patient_list = [d.patient for d in decisions if d.patient is not None]
    for patient in patient_list:
        patient_delivery.check_deliverable(app, patient)
    trust_policy.check_mss_headers(context.headers.mss_mes)
    await antivirus.check(
        app,
        raw,
        door="submission",
        source=client.ip,
        actor=login,
        teletransmission=rules.insurers is not None,
    )
    # RFC 6409 §8.1 and §8.3: the MSA may add a missing Date and Message-ID.
    added = b""
    if not context.headers.has_date:
        added += f"Date: {format_datetime(datetime.now(UTC))}\r\n".encode()
    if not context.headers.has_message_id:
        added += f"Message-ID: {message_id}\r\n".encode()
    added += trust_policy.mssante_headers(
        app, trust_bound=rules.trust_bound, has_nil=context.headers.has_mss_nil
    )
    message = await cpu_pool.concat(received_header(app.settings.hostname, client), added, raw)
    sensitive = _SensitiveVerdict(message, False, "")
    if rules.settings is not None:
        sensitive = await _sensitive_data_check(rules.settings, message, decisions)
    message = sensitive.message
    by_route = {d.address: d.route for d in decisions}
    local = [r.address for r in envelope.recipients if by_route[r.address] is Route.LOCAL]
    remote = [r for r in envelope.recipients if by_route[r.address] in (Route.TRUST, Route.OUTSIDE)]
    key = trace.trace_key(message_id)
    sender_box = rules.mailbox.id if rules.mailbox is not None and key else None
    traced = outgoing.Traced(sender_box, key) if sender_box is not None and key else None

    async def after_local() -> None:
        # RFC 3461 §6.2: the local copies asked for a « delivered » report.
        if local:
            await dsn.report_local_delivery(app, envelope, message, local)
        # 3. The patient handoff: the message itself never goes to the patient's mailbox.
        for patient in patient_list:
            assert rules.mailbox is not None
            await patient_delivery.deliver_to_patient(
                app,
                practice_id=rules.mailbox.practice_id,
                sender_mailbox_id=rules.mailbox.id,
                sender_address=rules.mailbox.address,
                patient=patient,
                message=message,
                source=client.ip,
                force_pickup=sensitive.force_pickup,
            )

    # 2. Stores that can be refused (a full mailbox): the client then retries the whole
    # message, and nothing else has happened yet; 3. the patient handoff; 4. the outbound queue.
    routed = await outgoing.route(
        app,
        message,
        envelope.mail_from,
        local=local,
        remote=remote,
        dkim_domain=domain_of(acting),
        origin=QueueOrigin(actor=login, source=client.ip, mailbox_id=sender_box),
        traced=traced,
        envid=envelope.envid,
        ret=envelope.ret,
        after_local=after_local,
    )
    if routed.stored:
        # A colleague's copy in this server: their absence answers (RFC 3834), never raises.
        await auto_replies.after_delivery(
            app,
            raw=message,
            sender=envelope.mail_from,
            stored=routed.stored,
            channel=auto_replies.Channel.MAIL,
        )
    if rules.insurers is not None and rules.mailbox is not None:
        # 5. A télétransmission lot: recorded, its copy kept (byte for byte) in Sent.
        await teletransmission.record_lot(
            app,
            rules.mailbox,
            subject=context.headers.subject,
            funds=[r.address for r in envelope.recipients],
            message=message,
            message_id=message_id,
            queue_id=routed.queue_id,
            source=client.ip,
            actor=login,
        )
    elif remote and sender_box is not None:
        await mon_espace_sante.record_sent(
            app, sender_box, message_id, [r.address for r in remote], message
        )
    async with app.db.write() as conn:
        # Sensitive data found: the sender sees it in the message's trace.
        if traced is not None and sensitive.trace_detail:
            for decision in decisions:
                if decision.leaves_trust_space:
                    await trace.record(
                        app,
                        conn,
                        traced.mailbox_id,
                        traced.key,
                        decision.address,
                        "sensitive",
                        sensitive.trace_detail,
                    )
        await append(
            conn,
            AuditEvent(
                actor=login,
                action="mail.submit",
                target=acting,
                source=client.ip,
                details={
                    "local": len(local),
                    "remote": len(remote),
                    "patients": len(patient_list),
                    "size": len(message),
                },
            ),
        )
