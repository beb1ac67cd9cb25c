"""Handler hooks: where SMTP policy lives (the session only runs the protocol).

The session calls a :class:`SmtpHandler` at each decision: what to add to EHLO, whether AUTH
may start, who the credentials belong to, whether a sender, a recipient, a message is
accepted. Hooks return the accepted value or raise — a project error (mapped to a reply by
:mod:`caducee.protocols.smtp.errors`) or :class:`~caducee.protocols.smtp.errors.SmtpRefusal`.

- :class:`MxHandler` (port 25): mail from other servers for our mailboxes; no AUTH.
- :class:`SubmissionHandler` (587, 465): our users' mail; AUTH first, and only under TLS.
"""

from __future__ import annotations

from typing import Protocol

from caducee.app import App
from caducee.errors import CaduceeError, NotFound
from caducee.flows import inbound, submission
from caducee.health import trust_inbound
from caducee.health.trust_inbound import PeerTls
from caducee.protocols.smtp import replies
from caducee.protocols.smtp.errors import SmtpRefusal
from caducee.protocols.smtp.parser import Mail, Rcpt
from caducee.protocols.smtp.replies import Reply, bilingual
from caducee.protocols.smtp.sasl import Credentials, SaslRegistry, password_mechanisms
from caducee.protocols.smtp.state import SessionInfo, Transaction
from caducee.services import auth, local_domains, oidc
from caducee.services.envelope import Envelope


class SmtpHandler(Protocol):
    #: The SASL mechanisms offered (empty: no AUTH).
    sasl: SaslRegistry

    def ehlo_keywords(self, session: SessionInfo) -> list[str]:
        """Extra EHLO keywords (e.g. ``AUTH PLAIN LOGIN``) for this session's state."""
        ...

    def auth_refusal(self, session: SessionInfo) -> Reply | None:
        """Why AUTH may not start now (None: it may)."""
        ...

    async def on_auth(self, session: SessionInfo, credentials: Credentials) -> str:
        """The login the credentials authenticate."""
        ...

    async def on_mail(self, session: SessionInfo, mail: Mail) -> str:
        """The accepted reverse-path ("" for ``<>``)."""
        ...

    async def on_rcpt(self, session: SessionInfo, transaction: Transaction, rcpt: Rcpt) -> str:
        """The accepted recipient address."""
        ...

    async def on_data(self, session: SessionInfo, envelope: Envelope, raw: bytes) -> None:
        """Store or queue the message; return only once it is durable (then 250 is sent)."""
        ...


async def _postmaster(app: App) -> str:
    """RFC 5321 §4.1.1.3: ``<Postmaster>`` without a domain means ours; the first of our
    domains that has a postmaster mailbox (else an address that is refused as unknown)."""
    domains = sorted(await local_domains.our_domains(app))
    for domain in domains:
        address = f"postmaster@{domain}"
        try:
            await inbound.check_recipient(app, address)
        except NotFound:
            continue
        except CaduceeError:
            pass  # exists (full...): the caller's own check gives the right refusal
        return address
    return f"postmaster@{domains[0]}" if domains else "postmaster"


class MxHandler:
    """Port 25: any sender, only our own mailboxes as recipients, SPF/DKIM/DMARC at DATA."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.sasl = SaslRegistry()

    def ehlo_keywords(self, session: SessionInfo) -> list[str]:
        return []

    def auth_refusal(self, session: SessionInfo) -> Reply | None:
        return replies.AUTH_NOT_AVAILABLE

    async def on_auth(self, session: SessionInfo, credentials: Credentials) -> str:
        raise SmtpRefusal(replies.AUTH_NOT_AVAILABLE)

    async def on_mail(self, session: SessionInfo, mail: Mail) -> str:
        # A trust-space sender domain must come from its operator (mutual TLS); other senders
        # are judged on the message (SPF, DKIM, DMARC), once DATA has arrived.
        domain = mail.path.address.rpartition("@")[2]
        peer = PeerTls.from_description(session.tls, session.peer_certificate)
        refusal = await trust_inbound.check_sender_domain(self.app, domain, peer, session.ip)
        if refusal is not None:
            code = 530 if refusal.reason == "plaintext" else 550
            raise SmtpRefusal(bilingual(code, refusal.status, refusal.fr, refusal.en))
        return mail.path.address

    async def on_rcpt(self, session: SessionInfo, transaction: Transaction, rcpt: Rcpt) -> str:
        address = await _postmaster(self.app) if rcpt.path.postmaster else rcpt.path.address
        peer = PeerTls.from_description(session.tls, session.peer_certificate)
        refusal = await trust_inbound.check_recipient_domain(
            self.app, transaction.mail_from, address, peer, session.ip
        )
        if refusal is not None:
            raise SmtpRefusal(bilingual(550, refusal.status, refusal.fr, refusal.en))
        size = transaction.mail.params.size or 0
        return await inbound.accept_recipient(self.app, address, size)

    async def on_data(self, session: SessionInfo, envelope: Envelope, raw: bytes) -> None:
        await inbound.receive(self.app, envelope, raw, session.client(envelope.smtputf8))


class SubmissionHandler:
    """Ports 587 and 465 (RFC 6409, RFC 8314): authenticated users, TLS before AUTH."""

    def __init__(self, app: App, sasl: SaslRegistry | None = None) -> None:
        self.app = app
        self.sasl = (
            sasl if sasl is not None else password_mechanisms(bearer=bool(app.settings.oidc_issuer))
        )

    def ehlo_keywords(self, session: SessionInfo) -> list[str]:
        # RFC 8314 §3 / RFC 3207: credentials travel only under TLS, so AUTH shows only then.
        if session.tls and self.sasl:
            return ["AUTH " + " ".join(self.sasl.names())]
        return []

    def auth_refusal(self, session: SessionInfo) -> Reply | None:
        return None if session.tls else replies.ENCRYPTION_REQUIRED

    async def on_auth(self, session: SessionInfo, credentials: Credentials) -> str:
        if credentials.kind == "token":
            account = await oidc.authenticate_bearer(
                self.app, credentials.authcid, credentials.secret, "smtp", session.ip
            )
            return account.login
        if credentials.kind != "password":
            raise SmtpRefusal(replies.AUTH_UNKNOWN_MECHANISM)
        # An account, or a mailbox login (it may then send as that mailbox alone: MAIL FROM
        # and From go through ``open_mailbox`` in ``flows.submission``).
        principal = await auth.authenticate_mail(
            self.app, credentials.authcid, credentials.secret, "smtp", session.ip
        )
        return principal.login

    async def on_mail(self, session: SessionInfo, mail: Mail) -> str:
        if not session.login:
            raise SmtpRefusal(replies.AUTH_REQUIRED if session.tls else replies.STARTTLS_FIRST)
        return await submission.authorize_sender(
            self.app, session.login, mail.path.address, session.ip
        )

    async def on_rcpt(self, session: SessionInfo, transaction: Transaction, rcpt: Rcpt) -> str:
        domains = transaction.context.get("domains")
        if not isinstance(domains, set):
            domains = await local_domains.our_domains(self.app)
            transaction.context["domains"] = domains
        return await submission.check_submission_recipient(
            self.app, rcpt.path.address, domains, transaction.mail_from
        )

    async def on_data(self, session: SessionInfo, envelope: Envelope, raw: bytes) -> None:
        await submission.submit(
            self.app, session.login, envelope, raw, session.client(envelope.smtputf8)
        )
