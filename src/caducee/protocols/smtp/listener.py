"""The SMTP doors, on the shared TCP plumbing (per-address limits, TLS, graceful stop):

- ``smtp`` (25): the MX; STARTTLS offered, not required (RFC 3207 §4: a public MX cannot
  demand it); no AUTH;
- ``submission`` (587, RFC 6409): STARTTLS, then AUTH, then mail;
- ``submissions`` (465, RFC 8314 §3.3): implicit TLS, then AUTH, then mail.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from caducee.app import App
from caducee.health.trust_tls import accept_client_certificates, load_trust_store
from caducee.listeners import ListenAddress
from caducee.protocols.smtp import replies
from caducee.protocols.smtp.handler import MxHandler, SmtpHandler, SubmissionHandler
from caducee.protocols.smtp.limits import SmtpLimits
from caducee.protocols.smtp.session import SessionConfig, SmtpSession
from caducee.protocols.smtp.stream import CHUNK
from caducee.protocols.tcp import Connection, StreamListener
from caducee.tls import server_ssl_context


@dataclass(frozen=True)
class DoorKind:
    implicit_tls: bool
    submission: bool


#: The SMTP listener names of ``[listeners]`` in caducee.toml.
DOORS: dict[str, DoorKind] = {
    "smtp": DoorKind(implicit_tls=False, submission=False),
    "submission": DoorKind(implicit_tls=False, submission=True),
    "submissions": DoorKind(implicit_tls=True, submission=True),
}


class SmtpListener:
    """A :class:`caducee.listeners.Listener` for one SMTP door."""

    def __init__(
        self,
        app: App,
        name: str,
        address: ListenAddress,
        *,
        limits: SmtpLimits | None = None,
        handler: SmtpHandler | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        kind = DOORS[name]
        self.name = name
        self.limits = limits or SmtpLimits.from_settings(app.settings)
        context = tls_context or server_ssl_context(app.settings)
        if not kind.submission and tls_context is None:
            # MSSanté operators present client certificates (RFC 8446 §4.3.2 / RFC 5246 §7.4.4).
            accept_client_certificates(context, load_trust_store(app.settings))
        self.handler: SmtpHandler = handler or (
            SubmissionHandler(app) if kind.submission else MxHandler(app)
        )
        self.config = SessionConfig(
            listener=name,
            hostname=app.settings.hostname,
            tls_context=None if kind.implicit_tls else context,
            limits=self.limits,
        )
        refusal = replies.closing(replies.TOO_MANY_CONNECTIONS, app.settings.hostname)
        self._tcp = StreamListener(
            name,
            address,
            self._session,
            tls_context=context,
            implicit_tls=kind.implicit_tls,
            refusal=refusal.render(),
            limits=self.limits.client_limits().held_by(app, name),
            # The stream buffer: we read in CHUNK blocks and cut lines ourselves.
            line_limit=2 * CHUNK,
        )

    async def _session(self, conn: Connection) -> None:
        await SmtpSession(conn, self.handler, self.config).run()

    async def start(self) -> ListenAddress:
        return await self._tcp.start()

    async def wait_closed(self) -> None:
        await self._tcp.wait_closed()

    async def stop(self, grace: float) -> None:
        await self._tcp.stop(grace)


def smtp_listener(app: App, name: str, address: ListenAddress) -> SmtpListener:
    """The factory ``caducee.server.LISTENER_FACTORIES`` uses for ``smtp``, ``submission``
    and ``submissions``."""
    return SmtpListener(app, name, address)
