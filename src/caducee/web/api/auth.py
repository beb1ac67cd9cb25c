"""The wrapper every ``/api/v1`` route goes through: the bearer token (RFC 6750 §2.1), its
scope, the rate limits (per token; per client address for bad tokens), errors as JSON, and the
audit record of the call (``api.call``: route, token, result; never content). Every answer is
checked against the statuses its declaration documents (:meth:`Endpoint.statuses`, the
OpenAPI description's source): one it does not document is logged as an error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from caducee.app import App
from caducee.errors import (
    AccessDenied,
    CaduceeError,
    MessageTooLarge,
    NotFound,
    PolicyRejected,
    QuotaExceeded,
    RetentionHold,
    SenderNotAllowed,
    TemporaryFailure,
    VirusFound,
)
from caducee.services import api_tokens, rate_limits
from caducee.services.audit import AuditEvent, record
from caducee.services.rate_limits import RateLimiter
from caducee.web.api.call import ApiError, Call, Endpoint, error_response
from caducee.web.core import client_ip, state

log = logging.getLogger(__name__)

CALLS_PER_MINUTE = 600
BAD_TOKENS_PER_MINUTE = 20


def _limiter(app: App, name: str, per_minute: int) -> RateLimiter:
    """The API's limiter ``name``, held by the node's app (``services.rate_limits``)."""
    return rate_limits.limiter(app, f"api.{name}", per_minute)


def wrap(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def route(request: Request) -> Response:
        app = state(request).app
        ip = client_ip(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise api_tokens.invalid_token()
            found, account = await api_tokens.authenticate(app, token.strip())
        except AccessDenied as exc:
            bad = _limiter(app, "bad", BAD_TOKENS_PER_MINUTE)
            if not await bad.allow(ip):
                return error_response(429, "limite", "Trop de tentatives.", "Too many attempts.",
                              {"retry-after": str(await bad.retry_after(ip))})  # fmt: skip
            return error_response(
                401, "jeton", exc.fr, exc.en, {"www-authenticate": 'Bearer realm="caducee"'}
            )
        calls = _limiter(app, "calls", CALLS_PER_MINUTE)
        if not await calls.allow(str(found.id)):
            return error_response(
                429,
                "limite",
                "Trop de requêtes pour ce jeton : ralentissez.",
                "Too many requests for this token: slow down.",
                {"retry-after": str(await calls.retry_after(str(found.id)))},
            )
        if endpoint.scope is not None and endpoint.scope not in found.scopes:
            return error_response(
                403,
                "droit",
                f"Ce jeton n'a pas le droit « {endpoint.scope} ».",
                f"This token lacks the '{endpoint.scope}' scope.",
            )
        result = "ok"
        try:
            response = await endpoint.handler(Call(request, found, account, endpoint=endpoint))
        except ApiError as exc:
            result = "failed"
            response = error_response(exc.status, exc.code, exc.fr, exc.en, details=exc.details)
        except RetentionHold as exc:  # the message's state forbids it, until a date
            result, response = "denied", error_response(409, "conservation", exc.fr, exc.en)
        except VirusFound as exc:  # nothing stored, nothing sent
            result, response = "denied", error_response(422, "virus", exc.fr, exc.en)
        except TemporaryFailure as exc:  # e.g. the antivirus is down: nothing done, retry
            result, response = (
                "failed",
                error_response(503, "indisponible", exc.fr, exc.en, {"retry-after": "60"}),
            )
        except (AccessDenied, SenderNotAllowed, PolicyRejected) as exc:
            result, response = "denied", error_response(403, "refuse", exc.fr, exc.en)
        except NotFound as exc:
            result, response = "failed", error_response(404, "introuvable", exc.fr, exc.en)
        except MessageTooLarge as exc:
            result, response = "failed", error_response(413, "taille", exc.fr, exc.en)
        except QuotaExceeded as exc:
            result, response = "failed", error_response(507, "quota", exc.fr, exc.en)
        except CaduceeError as exc:
            result, response = "failed", error_response(422, "invalide", exc.fr, exc.en)
        if response.status_code not in endpoint.statuses():
            log.error(
                "api answer not in its description: %s %s -> %d",
                endpoint.method,
                endpoint.path,
                response.status_code,
            )
        await record(
            app.db,
            AuditEvent(
                actor=account.login,
                action="api.call",
                target=endpoint.path,
                source=ip,
                result=result,
                details={
                    "method": endpoint.method,
                    "token": found.id,
                    "status": response.status_code,
                },
            ),
        )
        return response

    route.__name__ = endpoint.handler.__name__
    return route
