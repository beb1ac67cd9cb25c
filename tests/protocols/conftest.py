"""What the mail doors' tests share: a practice with its people and their app passwords, the
development CA their clients trust, the SASL PLAIN response a client sends, and the player of
C:/S: transcripts that each door's ``transcript()`` frames."""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from caducee.app import App
from caducee.services.app_passwords import create_app_password
from caducee.tls import create_dev_ca
from tests.services.helpers import person, practice


@dataclass(frozen=True)
class MailPractice:
    passwords: dict[str, str]  # login -> app password
    client_tls: ssl.SSLContext  # trusts the node's development CA


async def mail_practice(
    app: App, *logins: str, app_passwords: Sequence[str] | None = None
) -> MailPractice:
    """The node's development CA, the practice, its people (``logins``) and an app password
    for each of ``app_passwords`` (all of them by default)."""
    create_dev_ca(app.settings.tls_dir, app.settings.hostname)
    await practice(app)
    passwords: dict[str, str] = {}
    for login in logins:
        await person(app, login)
    for login in logins if app_passwords is None else app_passwords:
        passwords[login] = await create_app_password(app, login, "test")
    context = ssl.create_default_context(cafile=str(app.settings.tls_dir / "ca.crt"))
    return MailPractice(passwords, context)


def sasl_plain(authcid: str, password: str, authzid: str = "") -> str:
    """A SASL PLAIN client response, base64 (RFC 4616 §2)."""
    return base64.b64encode(f"{authzid}\0{authcid}\0{password}".encode()).decode()


def matches(text: str, pattern: str, wildcard: str = "*") -> bool:
    """``pattern`` matches all of ``text``, ``wildcard`` standing for anything (and nothing
    else special); ``<SP>`` is a space that would be invisible at the end of a line."""
    regex = ".*".join(re.escape(part) for part in pattern.replace("<SP>", " ").split(wildcard))
    return re.fullmatch(regex, text, re.DOTALL) is not None


async def play(
    script: str,
    *,
    send: Callable[[bytes], Awaitable[None]],
    line: Callable[[], Awaitable[str]],
    wildcard: str,
    steps: Mapping[str, Callable[[], Awaitable[None]]],
) -> list[str]:
    """Play ``script``: ``C: text`` lines are sent (consecutive ones in one write: pipelining),
    ``S: pattern`` lines must match the server's next lines in order (see :func:`matches`), and
    a line named in ``steps`` (``TLS``, ``CLOSED``) runs that step. Returns the server's lines."""
    pending: list[str] = []
    seen: list[str] = []

    async def flush() -> None:
        if pending:
            await send("".join(f"{text}\r\n" for text in pending).encode())
            pending.clear()

    for raw in script.splitlines():
        text = raw.strip()
        if not text:
            continue
        if text.startswith("C: ") or text == "C:":
            pending.append(text[3:])
        elif text.startswith("S: "):
            await flush()
            got = await line()
            seen.append(got)
            assert matches(got, text[3:], wildcard), f"expected {text[3:]!r}, got {got!r}"
        elif text in steps:
            await flush()
            await steps[text]()
        else:
            raise AssertionError(f"bad transcript line {text!r}")
    await flush()
    return seen
