"""The HTTPS door: the ASGI application and the listener that serves it with uvicorn.

Routes live in one module per area (:mod:`~caducee.web.status`, :mod:`~caducee.web.login`,
:mod:`~caducee.web.account`, :mod:`~caducee.web.admin`); what they share (sessions, CSRF,
rendering, the access check) is in :mod:`caducee.web.core`, the middleware in
:mod:`caducee.web.middleware`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from caducee.app import App
from caducee.errors import CaduceeError, TemporaryFailure
from caducee.health import patient_import, whitelist
from caducee.listeners import ListenAddress, bind_tcp, bound_address
from caducee.services import rate_limits
from caducee.tls import SERVER_CERT, SERVER_KEY, server_ssl_context
from caducee.web import (
    account,
    admin,
    api,
    api_tokens_page,
    autoconfig,
    home,
    login,
    oidc_login,
    portal,
    status,
    webmail,
)
from caducee.web import (
    patients as patients_web,
)
from caducee.web import rgpd as rgpd_web
from caducee.web.config import WebConfig
from caducee.web.core import WebState, error_message, error_page
from caducee.web.i18n import gettext
from caducee.web.middleware import (
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    BodyLimitMiddleware,
    LanguageMiddleware,
    RequestTimer,
    SecurityHeadersMiddleware,
)
from caducee.web.templating import create_environment

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "HttpsListener",
    "SecurityHeadersMiddleware",
    "WebConfig",
    "create_web_app",
]

log = logging.getLogger(__name__)

# Limits of the HTTPS listener (body size: WebConfig.max_body_bytes; login rate: per address).
MAX_CONNECTIONS = 1000
KEEP_ALIVE_SECONDS = 5
STARTUP_TIMEOUT = 10.0
STATIC_DIR = Path(__file__).resolve().parent / "static"


async def _http_error(request: Request, exc: Exception) -> Response:
    """Errors raised by the router (404, 405) as a French page (English on request)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if request.url.path.startswith("/static/") or "text/html" not in request.headers.get(
        "accept", ""
    ):
        return PlainTextResponse(
            "Introuvable. / Not found." if status == 404 else "Erreur. / Error.",
            status_code=status,
        )
    messages = {
        404: gettext("Cette page n'existe pas, ou vous n'y avez pas accès."),
        405: gettext("Cette adresse ne s'utilise pas ainsi."),
    }
    return error_page(request, status, messages.get(status, gettext("Erreur.")))


async def _temporary_failure(request: Request, exc: Exception) -> Response:
    """A part of the system is down (the S3 object store…): 503, nothing was done, retry."""
    message = error_message(exc) if isinstance(exc, CaduceeError) else gettext("Erreur.")
    if "text/html" not in request.headers.get("accept", ""):
        return PlainTextResponse(message, status_code=503, headers={"retry-after": "60"})
    response = error_page(request, 503, message)
    response.headers["retry-after"] = "60"
    return response


def create_web_app(app: App, config: WebConfig | None = None) -> ASGIApp:
    """The ASGI application of the node.

    Areas: status (``/``, ``/healthz``, ``/readyz``, ``/metrics``), login, the user's pages,
    the admin console; the webmail, patient portal and API of later issues add their routes
    here (and a tile in :data:`caducee.web.home.TILES`). Middleware, outermost first: security
    headers (they wrap even error pages), request body limit, language, the request timer
    (metrics).
    """
    config = config or WebConfig.from_settings(app.settings)
    routes: list[BaseRoute] = [
        *status.routes,
        *autoconfig.routes,
        *login.routes,
        *oidc_login.routes,
        *webmail.routes,
        *portal.routes,
        *patients_web.routes,
        *api.routes,
        *api_tokens_page.routes,
        *home.routes,
        *account.routes,
        *rgpd_web.routes,
        *admin.routes,
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    web = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, TemporaryFailure: _temporary_failure},
    )
    web.state.caducee = app
    web.state.web = WebState(
        app=app,
        config=config,
        templates=create_environment(),
        login_limiter=rate_limits.limiter(app, "web.login", config.login_attempts_per_minute),
    )
    return SecurityHeadersMiddleware(
        BodyLimitMiddleware(
            LanguageMiddleware(RequestTimer(web)),
            config.max_body_bytes,
            # A message with its attachments (multipart overhead: a third more).
            large=(
                ("/envoyer", app.settings.max_message_bytes * 4 // 3 + 65536),
                ("/patients/import", patient_import.MAX_BYTES * 4 // 3 + 65536),
                ("/admin/liste-blanche", whitelist.MAX_BYTES * 4 // 3 + 65536),
            ),
        )
    )


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
