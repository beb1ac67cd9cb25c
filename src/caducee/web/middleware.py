"""Pure ASGI middleware of the web door: security headers, request body limit, language."""

from __future__ import annotations

import json
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from caducee.services import metrics
from caducee.web.i18n import LANG_COOKIE, SUPPORTED, current_language, negotiate

#: The policy of every response unless a route sets its own (see ``csp_with_data_images``).
#: No inline script or style anywhere: scripts and styles come from /static only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
#: The message page: the same policy, also framing the sanitised body from our origin.
CONTENT_SECURITY_POLICY_MAIL_VIEW = CONTENT_SECURITY_POLICY.replace(
    "default-src 'none';", "default-src 'none'; frame-src 'self';"
)
#: The same policy, also allowing ``data:`` images (the TOTP QR code page only).
CONTENT_SECURITY_POLICY_DATA_IMAGES = CONTENT_SECURITY_POLICY.replace(
    "img-src 'self'", "img-src 'self' data:"
)
#: A downloaded file (attachments, exports): nothing in it runs or loads, opened on its own it is
#: sandboxed, and no other site may frame it — ``frame-ancestors`` holds here as everywhere.
CONTENT_SECURITY_POLICY_DOWNLOAD = "default-src 'none'; frame-ancestors 'none'; sandbox"
#: Added to every HTTP response unless the route set the header itself.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"strict-transport-security", b"max-age=63072000"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every response, errors included."""

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


#: The REST API answers its refusals in its own JSON error schema (``web.api.call``).
_API_PREFIX = "/api/"


async def _plain(send: Send, status: int, text: str, path: str = "") -> None:
    body, content_type = text.encode("utf-8"), b"text/plain; charset=utf-8"
    if path.startswith(_API_PREFIX):
        fr, _, en = text.partition(" / ")
        code = "taille" if status == 413 else "requete"
        error = {"error": {"code": code, "message": fr, "message_en": en}}
        body, content_type = json.dumps(error, ensure_ascii=False).encode(), b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, before any route reads them.

    The body is read (bounded) before the route runs and handed to it again, so a chunked
    upload that grows past the limit is cut off too.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, large: tuple[tuple[str, int], ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        #: (path suffix, limit): routes that take bigger bodies (a message with attachments).
        self.large = large

    def limit_for(self, path: str) -> int:
        for suffix, limit in self.large:
            if path.endswith(suffix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = "Requête trop volumineuse. / Request too large."
        path = str(scope.get("path", ""))
        max_bytes = self.limit_for(path)
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                if int(declared) > max_bytes:
                    await _plain(send, 413, too_large, path)
                    return
            except ValueError:
                await _plain(send, 400, "Requête invalide. / Bad request.", path)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await _plain(send, 413, too_large, path)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class LanguageMiddleware:
    """Picks the request's language (see :mod:`caducee.web.i18n`); ``?lang=`` is remembered in
    a cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        asked = (query.get("lang") or [None])[0]
        cookie_lang: str | None = None
        raw_cookie = _header(scope, b"cookie")
        if raw_cookie:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(raw_cookie)
            except Exception:
                jar = SimpleCookie()
            if LANG_COOKIE in jar:
                cookie_lang = jar[LANG_COOKIE].value
        lang = negotiate(asked, cookie_lang, _header(scope, b"accept-language"))
        token = current_language.set(lang)
        remember = asked is not None and asked.lower() in SUPPORTED

        async def send_with_cookie(message: Message) -> None:
            if remember and message["type"] == "http.response.start":
                cookie = (
                    f"{LANG_COOKIE}={lang}; Path=/; Max-Age=31536000; Secure; HttpOnly; "
                    "SameSite=Lax"
                )
                headers = [*message.get("headers", []), (b"set-cookie", cookie.encode("ascii"))]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_cookie)
        finally:
            current_language.reset(token)


class RequestTimer:
    """Times every HTTP request for ``caducee_http_request_seconds``, labelled with the route's
    template (``/courrier/{mailbox}/...``) as the router matched it, never the raw path (which
    may name a mailbox, a message or a token). A request no route matched counts as
    ``unmatched``. Wraps the Starlette application itself, whose router names the route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) if route is not None else None
            metrics.HTTP_SECONDS.labels(
                template or "unmatched",
                metrics.label(str(scope.get("method", "")), HTTP_METHODS),
                f"{status[0] // 100}xx",
            ).observe(time.perf_counter() - started)


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
