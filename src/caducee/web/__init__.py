"""The HTTPS door: the ASGI application and the listener that serves it with uvicorn.

Today it only carries the status routes (:mod:`caducee.web.status`); the webmail, patient
portal, admin and API add their routes to :func:`create_web_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caducee.app import App
from caducee.errors import CaduceeError
from caducee.listeners import ListenAddress, bind_tcp, bound_address
from caducee.tls import SERVER_CERT, SERVER_KEY, server_ssl_context
from caducee.web import status

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
#: Added to every HTTP response unless the route set the header itself.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"strict-transport-security", b"max-age=63072000"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)

# Limits of the HTTPS listener (the webmail issue adds body size and per-client rate limits).
MAX_CONNECTIONS = 1000
KEEP_ALIVE_SECONDS = 5
STARTUP_TIMEOUT = 10.0


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding :data:`SECURITY_HEADERS` to every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(name).lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_web_app(app: App) -> ASGIApp:
    """The ASGI application of the node (the security headers wrap even error pages)."""
    web = Starlette(routes=[*status.routes])
    web.state.caducee = app
    return SecurityHeadersMiddleware(web)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGTERM/SIGINT to ``caducee serve``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpsListener:
    """Serves :func:`create_web_app` (or ``asgi_app``) over TLS on a socket bound by us."""

    name = "https"

    def __init__(
        self, app: App, address: ListenAddress, *, asgi_app: ASGIApp | None = None
    ) -> None:
        self.app = app
        self.address = address
        self.asgi_app = asgi_app if asgi_app is not None else create_web_app(app)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> ListenAddress:
        settings = self.app.settings
        ssl_context = server_ssl_context(settings)  # clear French error if the files are missing
        sock = bind_tcp(self.name, self.address)
        try:
            config = uvicorn.Config(
                self.asgi_app,
                lifespan="off",  # the App is opened and closed by caducee.server
                log_config=None,  # logging belongs to the command line
                access_log=False,
                server_header=False,
                proxy_headers=False,
                http="h11",
                ws="none",
                limit_concurrency=MAX_CONNECTIONS,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
                ssl_certfile=settings.tls_dir / SERVER_CERT,
                ssl_keyfile=settings.tls_dir / SERVER_KEY,
            )
            config.load()
            # Serve with our hardened context (TLS >= 1.2) rather than uvicorn's own.
            config.ssl = ssl_context
            address = bound_address(sock)
        except BaseException:
            sock.close()
            raise
        server = _EmbeddedServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="listener-https")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while not server.started:
            if self._task.done() or loop.time() > deadline:
                await self.stop(0)
                sock.close()
                raise CaduceeError(
                    f"Le serveur HTTPS n'a pas pu démarrer sur {address}.",
                    f"The HTTPS server could not start on {address}.",
                )
            await asyncio.sleep(0.01)
        return address

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.wait([self._task])

    async def stop(self, grace: float) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        # uvicorn reads this when it shuts down: in-flight requests get ``grace`` seconds.
        server.config.timeout_graceful_shutdown = max(1, math.ceil(grace))
        server.should_exit = True
        done, _ = await asyncio.wait([task], timeout=grace + 2)
        if not done:
            server.force_exit = True
            done, _ = await asyncio.wait([task], timeout=1)
        if not done:
            task.cancel()
            await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "listener=https %s",
                "arrêt en erreur / stopped with an error",
                exc_info=task.exception(),
            )
