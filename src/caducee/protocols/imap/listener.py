"""The IMAP doors: ``imap`` (143, STARTTLS, no login before TLS) and ``imaps`` (993, implicit
TLS, RFC 8314), on the shared TCP plumbing (per-address limits, bounded lines)."""

from __future__ import annotations

from caducee.app import App
from caducee.listeners import ListenAddress
from caducee.protocols.imap.session import LINE_LIMIT, ImapConfig, Session
from caducee.protocols.tcp import ClientLimits, Connection, StreamListener
from caducee.tls import server_ssl_context


def imap_listener(
    app: App, address: ListenAddress, *, implicit_tls: bool, limits: ClientLimits | None = None
) -> StreamListener:
    context = server_ssl_context(app.settings)
    config = ImapConfig(
        app.settings.hostname, context, implicit_tls, app.settings.max_message_bytes
    )

    async def session(conn: Connection) -> None:
        await Session(app, conn, config).run()

    name = "imaps" if implicit_tls else "imap"
    return StreamListener(
        name,
        address,
        session,
        tls_context=context,
        implicit_tls=implicit_tls,
        refusal=b"* BYE [UNAVAILABLE] trop de connexions, reessayez plus tard\r\n",
        limits=(limits or ClientLimits.from_settings(app.settings)).held_by(app, name),
        line_limit=LINE_LIMIT + 2,
    )
