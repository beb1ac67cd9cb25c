"""The POP3 doors: ``pop3`` (110, STLS) and ``pop3s`` (995, implicit TLS, RFC 8314)."""

from __future__ import annotations

import asyncio

from caducee.app import App
from caducee.listeners import ListenAddress
from caducee.protocols.pop3.session import Pop3Config, Pop3Session
from caducee.protocols.tcp import ClientLimits, Connection, StreamListener
from caducee.tls import server_ssl_context


def pop3_listener(app: App, address: ListenAddress, *, implicit_tls: bool) -> StreamListener:
    context = server_ssl_context(app.settings)
    config = Pop3Config(app.settings.hostname, context, implicit_tls)

    async def session(conn: Connection) -> None:
        pop3 = Pop3Session(app, conn, config)
        try:
            await pop3.run()
        finally:
            # Shielded: a session cancelled at the end of the grace still gives its lease back.
            await asyncio.shield(pop3.release())

    name = "pop3s" if implicit_tls else "pop3"
    return StreamListener(
        name,
        address,
        session,
        tls_context=context,
        implicit_tls=implicit_tls,
        refusal=b"-ERR [SYS/TEMP] trop de connexions, reessayez\r\n",
        limits=ClientLimits.from_settings(app.settings).held_by(app, name),
    )
