"""Status routes: ``GET /`` (the landing page), ``GET /healthz`` (the process answers),
``GET /readyz`` (every readiness check of ``flows.node_state``, the same ``caducee doctor``
prints) and ``GET /metrics`` (Prometheus text format, ``services.metrics``).

``/readyz`` and ``/metrics`` say how the node is run: only clients of the ``[metrics] allow``
networks, or bearing the ``[metrics] token_file`` token, may read them (403 otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from caducee.app import App
from caducee.flows import node_state
from caducee.services import metrics
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
    """Alive: the process answers (what a supervisor restarts on); readiness is ``/readyz``."""
    return JSONResponse({"status": "ok"})


def _may_read(request: Request) -> bool:
    app = caducee_app(request)
    client = request.client.host if request.client is not None else ""
    return metrics.may_read(app.settings, client, request.headers.get("authorization", ""))


FORBIDDEN = "Accès refusé : réseau non autorisé ([metrics] allow) ni jeton. / Forbidden."


async def readyz(request: Request) -> Response:
    """200 when every check passes (warnings included), else 503; the body lists them all."""
    if not _may_read(request):
        return PlainTextResponse(FORBIDDEN, status_code=403)
    app = caducee_app(request)
    checks = await node_state.readiness(app.settings, app.db, serving=True)
    ready = node_state.ready(checks)
    failing = [c.name for c in checks if c.status is node_state.Status.FAIL]
    if failing:
        log.warning("readyz: not ready checks=%s", ",".join(failing))
    body = {
        "status": "ready" if ready else "not ready",
        "checks": [c.as_json() for c in checks],
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics_page(request: Request) -> Response:
    """Every worker's counters and the database's gauges, in the Prometheus text format."""
    if not _may_read(request):
        return PlainTextResponse(FORBIDDEN, status_code=403)
    gauges = await node_state.gauges(caducee_app(request))
    body = await asyncio.to_thread(metrics.exposition, gauges)
    return Response(body, media_type=metrics.CONTENT_TYPE)


routes = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics_page, methods=["GET"], name="metrics"),
]
