"""Status routes: ``GET /`` (the landing page) and ``GET /healthz`` (the database answers)."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from caducee.app import App
from caducee.store import node_repo
from caducee.web.core import render

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


async def home(request: Request) -> Response:
    """The landing page: what Caducée is, the professionals' login, what a patient does."""
    return render(request, "landing.html", {"version": caducee_version()})


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
