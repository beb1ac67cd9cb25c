"""Status routes: ``GET /`` (a small French page) and ``GET /healthz`` (the database answers)."""

from __future__ import annotations

import html
import logging
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from caducee.app import App
from caducee.store import node_repo

log = logging.getLogger(__name__)


def caducee_version() -> str:
    try:
        return version("caducee")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "inconnue"


def caducee_app(request: Request) -> App:
    """The node's :class:`App`, set on the Starlette application by ``create_web_app``."""
    app: App = request.app.state.caducee
    return app


PAGE = """<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Caducée</title>
</head>
<body>
<main>
<h1>Caducée fonctionne</h1>
<p>Messagerie sécurisée de santé.</p>
<p><a href="/connexion">Se connecter</a></p>
<dl>
<dt>Serveur</dt><dd>{hostname}</dd>
<dt>Version</dt><dd>{version}</dd>
</dl>
</main>
</body>
</html>
"""


async def home(request: Request) -> Response:
    app = caducee_app(request)
    body = PAGE.format(
        hostname=html.escape(app.settings.hostname), version=html.escape(caducee_version())
    )
    return HTMLResponse(body)


async def healthz(request: Request) -> Response:
    app = caducee_app(request)
    try:
        async with app.db.read() as conn:
            answer = await node_repo.answers(conn)
    except Exception as exc:
        # The class name only: driver messages may carry connection details.
        log.warning(
            "healthz: base de données indisponible / database unavailable error=%s",
            type(exc).__name__,
        )
        return JSONResponse({"status": "unavailable"}, status_code=503)
    if not answer:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


routes = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
]
