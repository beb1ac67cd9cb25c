"""Any-state and not-authenticated commands: CAPABILITY, NOOP, LOGOUT, ID (RFC 2971), ENABLE
(RFC 5161), STARTTLS, LOGIN, AUTHENTICATE with SASL-IR (RFC 4959).

Mechanisms are pluggable: :data:`MECHANISMS` maps a SASL name to a coroutine that runs the
exchange and returns the login and app password to check (OAUTHBEARER / XOAUTH2 plug in here later).
Before TLS on port 143 no login is possible (LOGINDISABLED, RFC 3501 §6.2.3 / RFC 8314).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from caducee.errors import AccessDenied, TemporaryFailure
from caducee.protocols.imap.protocol import Command
from caducee.protocols.imap.session import Session, State, bad, no
from caducee.protocols.sasl import SaslError, decode_response, parse_plain
from caducee.protocols.sasl_bearer import parse_oauthbearer, parse_xoauth2
from caducee.protocols.tcp import ConnectionClosed, LineTooLong
from caducee.services import oidc
from caducee.services.auth import authenticate_mail
from caducee.services.lockout import AccountLocked

SASL_LINE_LIMIT = 8192
FAILED_LOGIN_DELAY = 1.0

#: Extensions advertised once authenticated; each one is implemented completely.
EXTENSIONS = [
    "SASL-IR",
    "LITERAL+",
    "ID",
    "ENABLE",
    "IDLE",
    "UIDPLUS",
    "MOVE",
    "UNSELECT",
    "NAMESPACE",
    "CHILDREN",
    "SPECIAL-USE",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "ESEARCH",
    "STATUS=SIZE",
    "QUOTA",
    "QUOTA=RES-STORAGE",
    "MULTIAPPEND",
    "CONDSTORE",
    "QRESYNC",
    "UTF8=ACCEPT",
]
ENABLEABLE = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"}


def capabilities(session: Session) -> list[str]:
    caps = ["IMAP4rev1", "IMAP4rev2"]
    if session.state is State.NOT_AUTHENTICATED:
        if session.conn.tls:
            caps.append("AUTH=PLAIN")
            if session.app.settings.oidc_issuer:
                caps += ["AUTH=OAUTHBEARER", "AUTH=XOAUTH2"]
            caps.append("SASL-IR")
        else:
            if session.config.tls_context is not None:
                caps.append("STARTTLS")
            caps.append("LOGINDISABLED")
        caps += ["LITERAL+", "ID", "ENABLE"]
        return caps
    return [*caps, *EXTENSIONS, f"APPENDLIMIT={session.config.max_message_bytes}"]


async def cmd_capability(session: Session, command: Command) -> None:
    session.untagged("CAPABILITY " + " ".join(capabilities(session)))
    await session.ok(command, "CAPABILITY fait")


async def cmd_noop(session: Session, command: Command) -> None:
    await session.ok(command, "NOOP fait")


async def cmd_logout(session: Session, command: Command) -> None:
    session.untagged("BYE au revoir")
    session.state = State.LOGOUT
    await session.tagged(command.tag, "OK", "LOGOUT fait")


async def cmd_id(session: Session, command: Command) -> None:
    values = command.args
    assert isinstance(values, list)
    pairs = dict(zip(values[::2], values[1::2], strict=False))
    session.client_id = str(pairs.get("name", ""))[:60]
    session.untagged('ID ("name" "Caducee" "vendor" "Caducee")')
    await session.ok(command, "ID fait")


async def cmd_enable(session: Session, command: Command) -> None:
    """RFC 5161; QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)."""
    names = command.args
    assert isinstance(names, list)
    done = []
    for name in names:
        if name in ENABLEABLE and name not in session.enabled:
            session.enabled.add(name)
            done.append("IMAP4rev2" if name == "IMAP4REV2" else name)
            if name in ("CONDSTORE", "QRESYNC"):
                session.condstore = True
            if name == "QRESYNC":
                session.enabled.add("CONDSTORE")
    session.untagged("ENABLED" + "".join(" " + name for name in done))
    await session.ok(command, "ENABLE fait")


async def cmd_starttls(session: Session, command: Command) -> None:
    if session.conn.tls or session.config.tls_context is None:
        raise bad("STARTTLS impossible ici")
    await session.tagged(command.tag, "OK", "debut de la negociation TLS")
    if session.conn.pending_input():  # RFC 3501 §6.2.1: no command may be injected
        raise ConnectionClosed("pipelined STARTTLS")
    await session.conn.start_tls(session.config.tls_context)


async def _login(session: Session, user: str, password: str) -> None:
    try:
        principal = await authenticate_mail(session.app, user, password, "imap", session.conn.ip)
    except AccountLocked as locked:
        await asyncio.sleep(FAILED_LOGIN_DELAY)
        raise no(
            f"compte temporairement verrouille, reessayez dans {locked.retry_after_seconds} s",
            "UNAVAILABLE",
        ) from None
    except AccessDenied:
        await asyncio.sleep(FAILED_LOGIN_DELAY)  # slows down guessing on one connection
        raise no(
            "identifiant ou mot de passe d'application incorrect", "AUTHENTICATIONFAILED"
        ) from None
    # An account, or a mailbox login: its address is then the personal namespace, and
    # ``services.mailstore`` shows that mailbox alone (``open_mailbox`` decides every use).
    _logged_in(session, principal.login, principal.account.id, principal.mailbox_id)


def _logged_in(
    session: Session, login: str, account_id: int, mailbox_id: int | None = None
) -> None:
    session.login = login
    # Who a cut (the account or the mailbox disabled, deleted) ends the session for.
    session.account_id, session.login_mailbox_id = account_id, mailbox_id
    session.state = State.AUTHENTICATED


def _require_tls(session: Session) -> None:
    if not session.conn.tls:
        raise no("utilisez STARTTLS avant de vous identifier", "PRIVACYREQUIRED")


async def cmd_login(session: Session, command: Command) -> None:
    _require_tls(session)
    assert isinstance(command.args, tuple)
    user, password = command.args
    await _login(session, str(user), str(password))
    await session.ok(command, "connecte", "CAPABILITY " + " ".join(capabilities(session)))


async def _sasl_response(session: Session) -> str:
    await session.flush()
    try:
        line = await session.conn.readline(SASL_LINE_LIMIT, 60)
    except LineTooLong:
        raise bad("reponse SASL trop longue") from None
    return line.rstrip(b"\r\n").decode("ascii", "replace")


async def _response(session: Session, initial: str | None) -> bytes:
    """The client's decoded SASL response: the SASL-IR initial one (RFC 4959 §3) or, after an
    empty continuation, the next line (RFC 3501 §6.2.2); ``*`` cancels."""
    if initial is None:
        await session.conn.write(b"+ \r\n")
        initial = await _sasl_response(session)
    if initial == "*":
        raise bad("authentification annulee / authentication cancelled")
    try:
        return decode_response(initial)
    except SaslError as error:
        raise bad(error.text) from None


async def _plain(session: Session, initial: str | None) -> tuple[str, str]:
    """RFC 4616 PLAIN, decoded by the decoder every door shares."""
    try:
        plain = parse_plain(await _response(session, initial))
    except SaslError as error:
        if error.authorization:
            raise no(error.text, "AUTHORIZATIONFAILED") from None
        raise bad(error.text) from None
    return plain.authcid, plain.password


Mechanism = Callable[[Session, str | None], Awaitable[tuple[str, str]]]
#: SASL mechanisms by name (RFC 4422); a mechanism returns (login, app password) to check.
MECHANISMS: dict[str, Mechanism] = {"PLAIN": _plain}


async def _bearer(session: Session, name: str, initial: str | None) -> None:
    """RFC 7628 OAUTHBEARER or XOAUTH2: a bearer token of the configured OpenID issuer."""
    decoded = await _response(session, initial)
    parsed = (parse_oauthbearer if name == "OAUTHBEARER" else parse_xoauth2)(decoded)
    if parsed is None:
        raise bad("reponse SASL invalide")
    user, token = parsed
    try:
        account = await oidc.authenticate_bearer(session.app, user, token, "imap", session.conn.ip)
    except (AccessDenied, TemporaryFailure):
        await asyncio.sleep(FAILED_LOGIN_DELAY)
        raise no("jeton refuse", "AUTHENTICATIONFAILED") from None
    _logged_in(session, account.login, account.id)


async def cmd_authenticate(session: Session, command: Command) -> None:
    _require_tls(session)
    assert isinstance(command.args, tuple)
    mechanism, initial = command.args
    name = str(mechanism).upper()
    if name in ("OAUTHBEARER", "XOAUTH2") and session.app.settings.oidc_issuer:
        await _bearer(session, name, initial if isinstance(initial, str) else None)
        await session.ok(command, "connecte", "CAPABILITY " + " ".join(capabilities(session)))
        return
    run = MECHANISMS.get(str(mechanism))
    if run is None:
        raise no("mecanisme non pris en charge (PLAIN)", "CANNOT")
    user, password = await run(session, initial if isinstance(initial, str) else None)
    await _login(session, user, password)
    await session.ok(command, "connecte", "CAPABILITY " + " ".join(capabilities(session)))
