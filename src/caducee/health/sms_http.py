"""The HTTP client of the SMS providers: one JSON POST over verified TLS, bounded in time and
size, retried once on a server error (5xx) or a network failure. Standard library only.

Nothing here logs the request body: it holds the text of the SMS (codes, passwords).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Seconds one HTTP exchange with a provider may take.
TIMEOUT_SECONDS = 10.0
#: Pause before the single retry.
RETRY_DELAY_SECONDS = 0.5
#: Largest answer read from a provider.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes

    def json(self) -> Any:
        """The answer's JSON value, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class HttpFailure(Exception):
    """The provider could not be reached, or kept failing (``status`` 0: no HTTP answer).
    ``certificate``: its TLS certificate did not verify (never retried)."""

    def __init__(self, status: int, reason: str, *, certificate: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.certificate = certificate


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Certificates verified against the system's CAs, or ``ca_file`` when given."""
    return ssl.create_default_context(cafile=ca_file or None)


def _post(url: str, body: bytes, headers: Mapping[str, str], context: ssl.SSLContext) -> HttpAnswer:
    if not url.startswith("https://"):
        raise HttpFailure(0, "https:// required")
    request = urllib.request.Request(  # noqa: S310 (https only, checked above)
        url, data=body, headers=dict(headers), method="POST"
    )
    try:
        with urllib.request.urlopen(  # noqa: S310
            request, timeout=TIMEOUT_SECONDS, context=context
        ) as response:
            return HttpAnswer(response.status, response.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpAnswer(exc.code, exc.read(MAX_ANSWER_BYTES))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise HttpFailure(0, "certificate", certificate=True) from None
        text = reason if isinstance(reason, str) else type(reason).__name__
        raise HttpFailure(0, text) from None


async def post_json(
    url: str, body: bytes, headers: Mapping[str, str], *, ca_file: str = ""
) -> HttpAnswer:
    """POST the JSON ``body`` (see :func:`encode`); an HTTP answer below 500 is returned as is.
    A 5xx answer or a network failure (timeout included) is retried once, then raises
    :class:`HttpFailure`; a certificate that does not verify raises at once."""
    all_headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "application/json",
        "User-Agent": "Caducee",
        **headers,
    }
    context = tls_context(ca_file)
    failure = HttpFailure(0, "no attempt")
    for attempt in range(2):
        if attempt:
            await asyncio.sleep(RETRY_DELAY_SECONDS)
        try:
            answer = await asyncio.to_thread(_post, url, body, all_headers, context)
        except HttpFailure as exc:
            if exc.certificate:
                raise
            failure = exc
            continue
        if answer.status < 500:
            return answer
        failure = HttpFailure(answer.status, f"HTTP {answer.status}")
    raise failure


def encode(payload: object) -> bytes:
    """``payload`` as the JSON bytes a provider receives (UTF-8)."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
