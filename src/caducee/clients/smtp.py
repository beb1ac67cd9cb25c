"""SMTP client (RFC 5321): one session to a next hop carrying the transactions of one attempt.

:meth:`SmtpClient.deliver` opens a session to a :class:`Target` and runs transactions on it:

* **connection and greeting** (RFC 5321 §3.1, §4.2): a greeting other than 220 is the attempt's
  reply; a connection that cannot be made is a temporary failure (4.4.1);
* **EHLO**, and HELO when EHLO is refused with 5xx (§4.1.4);
* **STARTTLS** (RFC 3207) whenever offered, by the target's TLS policy: ``opportunistic``
  (RFC 7435: encrypt when possible, without authentication; a failed negotiation is retried on
  a new connection without TLS), ``required`` and ``mssante`` (the certificate must verify; no
  plaintext fallback: a failed negotiation (4.7.5) or no STARTTLS offered (4.7.10) is a
  temporary failure), ``none``. EHLO again after TLS (RFC 3207 §4.2). The caller supplies
  the TLS context of each policy (:func:`tls_context` builds the ordinary ones);
* **transactions** (§3.3): MAIL FROM with SIZE (RFC 1870), BODY=8BITMIME (RFC 6152) and
  SMTPUTF8 (RFC 6531 §3.2: refused with 5.6.7 when an address needs it and the server lacks
  it), RET and ENVID when the next hop advertises DSN (RFC 3461 §4.3, §4.4); RCPT TO for each
  recipient with NOTIFY and ORCPT (RFC 3461 §4.1, §4.2); DATA (a big message's line ends and
  leading dots, §4.5.2, prepared in a worker thread a slice at a time: :func:`data_bytes`);
  RSET after a refused transaction (§4.1.1.5);
* **reply classification**: every recipient gets a :class:`Reply`, the remote code with its
  RFC 3463 enhanced status (from the text, RFC 2034, or else the code's class) or our own
  diagnostic, whose :attr:`Reply.kind` is ``delivered`` (2xx), ``permanent`` (5xx) or
  ``temporary`` (anything else, a lost connection included).

The client holds no rule of ours and reads no store; the delivery worker
(:mod:`caducee.flows.outbound`) chooses the targets and records the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import aiosmtplib
from aiosmtplib.protocol import LINE_ENDINGS_REGEX, PERIOD_REGEX
from aiosmtplib.response import SMTPResponse

log = logging.getLogger(__name__)

#: Characters of a reply's text kept (one line; the queue stores as many).
REPLY_MAX = 500
#: TLS policies under which the peer's certificate must verify (no plaintext fallback).
VERIFIED = ("required", "mssante")

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")

#: Messages from this size on have their DATA bytes prepared in a worker thread
#: (:func:`data_bytes`): aiosmtplib does it on the event loop in two regular-expression passes
#: over the whole message, each holding the interpreter lock (100–180 ms for 20 MB on a busy
#: machine, during which no door of the node answered).
PREPARE_OFF_LOOP_BYTES = 1024 * 1024
#: About this many bytes per pass (each cut after a line feed): the lock is released between.
DATA_SLICE = 256 * 1024


# ----- replies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An attempt's result for one recipient: a remote SMTP reply, or our own diagnostic."""

    code: int | None  # the remote SMTP code; None when the text is ours
    status: str  # RFC 3463 enhanced status code
    text: str  # one line, at most REPLY_MAX characters
    remote_mta: str | None = None

    @property
    def kind(self) -> str:
        """``delivered``, ``permanent`` or ``temporary``, by the status class (RFC 3463 §3.1)."""
        return {"2": "delivered", "5": "permanent"}.get(self.status[:1], "temporary")


def smtp_reply(code: int, message: str, remote: str | None) -> Reply:
    """A remote reply; its RFC 3463 status is taken from the text (RFC 2034) or the code.

    A status whose class differs from the code's is ignored (RFC 3463 §2); a code outside
    200-599 counts as a temporary failure (4.0.0).
    """
    text = " ".join(message.split())
    klass = str(code)[:1] if code in range(200, 600) and str(code)[:1] in "245" else "4"
    match = _ENHANCED.match(text)
    status = match.group(0) if match and match.group(1) == klass else f"{klass}.0.0"
    return Reply(code, status, text[:REPLY_MAX], remote)


def local_reply(status: str, fr: str, en: str, remote: str | None = None) -> Reply:
    """Our own diagnostic, French then English (it is shown to people and in reports)."""
    return Reply(None, status, f"{fr} / {en}"[:REPLY_MAX], remote)


class DeliveryFailure(Exception):
    """No usable SMTP session for a whole attempt (route, connection, greeting, TLS)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


class _PlaintextRetry(Exception):
    """Opportunistic TLS failed: try the same host again without it."""


# ----- what to send, and where -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str  # host name for TLS verification and reports
    port: int
    address: str | None  # IP address to connect to (None: resolve ``host`` by the system)
    tls: str  # none, opportunistic, required, mssante


@dataclass(frozen=True)
class Recipient:
    key: int  # the caller's name for this recipient's result
    address: str
    notify: tuple[str, ...] = ()  # RFC 3461 NOTIFY as given by the client; empty = not given
    orcpt: str | None = None  # RFC 3461 ORCPT as given by the client (xtext)


@dataclass(frozen=True)
class Transaction:
    """One message for some recipients at one destination (at most 100, RFC 5321 §4.5.3.1.8)."""

    mail_from: str  # "" for the null reverse-path
    recipients: Sequence[Recipient]
    raw: bytes
    ret: str | None = None  # RFC 3461 RET
    envid: str | None = None  # RFC 3461 ENVID, xtext-encoded as sent (§4.4)


@dataclass(frozen=True)
class Result:
    reply: Reply
    #: The next hop advertised DSN: reporting success is its job from now on.
    next_hop_dsn: bool = False


def tls_context(policy: str, ca_file: str = "") -> ssl.SSLContext:
    """For ``required``: verified against the system store plus ``ca_file``; otherwise
    opportunistic (RFC 7435: encrypt when possible, without authentication). TLS 1.2 or later.
    An unreadable ``ca_file`` is a :class:`DeliveryFailure` (4.7.5)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if policy == "required":
        if ca_file:
            try:
                context.load_verify_locations(cafile=ca_file)
            except (OSError, ssl.SSLError):
                raise DeliveryFailure(
                    local_reply(
                        "4.7.5",
                        f"fichier d'autorités de certification {ca_file} illisible",
                        f"CA file {ca_file} is unreadable",
                    )
                ) from None
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# ----- the client --------------------------------------------------------------------------------


class SmtpClient:
    """Sessions to next hops (see the module docstring).

    ``contexts`` gives the TLS context of a policy when the server offers STARTTLS (it may raise
    :class:`DeliveryFailure`). Timeouts: RFC 5321 §4.5.3.2 asks for 5 minutes per command and
    10 minutes for the end of DATA.
    """

    def __init__(
        self,
        local_hostname: str,
        contexts: Callable[[str], ssl.SSLContext],
        *,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        data_timeout: float = 600.0,
    ) -> None:
        self.local_hostname = local_hostname
        self.contexts = contexts
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.data_timeout = data_timeout

    async def deliver(
        self, target: Target, transactions: Sequence[Transaction]
    ) -> dict[int, Result]:
        """One session to ``target`` running ``transactions``: a result for every recipient.

        Raises :class:`DeliveryFailure` when no session could be opened (try the next target);
        once open, failures become results (a lost connection: 4.4.2 for what was unanswered).
        """
        try:
            smtp = await self._open(target)
        except _PlaintextRetry:
            log.info("opportunistic TLS failed, retrying without host=%s", target.host)
            smtp = await self._open(replace(target, tls="none"))
        try:
            return await self._transactions(smtp, target.host, transactions)
        finally:
            if smtp.is_connected:
                with contextlib.suppress(Exception):
                    await smtp.quit(timeout=10)
            smtp.close()

    async def _hello(self, smtp: aiosmtplib.SMTP, remote: str) -> None:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            if exc.code >= 500 and smtp.is_connected:  # RFC 5321 §4.1.4: fall back to HELO
                try:
                    await smtp.helo()
                    return
                except aiosmtplib.SMTPHeloError as again:
                    raise DeliveryFailure(smtp_reply(again.code, again.message, remote)) from None
            raise DeliveryFailure(smtp_reply(exc.code, exc.message, remote)) from None

    async def _open(self, target: Target) -> aiosmtplib.SMTP:
        """A session ready for MAIL FROM, TLS policy applied; DeliveryFailure otherwise."""
        remote = target.host
        smtp = aiosmtplib.SMTP(
            hostname=target.address or target.host,
            port=target.port,
            local_hostname=self.local_hostname,
            timeout=self.command_timeout,
            start_tls=False,
        )
        try:
            try:
                await smtp.connect(timeout=self.connect_timeout)
            except aiosmtplib.SMTPConnectResponseError as exc:  # greeting other than 220
                raise DeliveryFailure(smtp_reply(exc.code, exc.message, remote)) from None
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise DeliveryFailure(
                    local_reply(
                        "4.4.1",
                        f"connexion impossible à {remote} port {target.port} ({_why(exc)})",
                        f"cannot connect to {remote} port {target.port} ({_why(exc)})",
                        remote,
                    )
                ) from None
            await self._hello(smtp, remote)
            if target.tls != "none" and smtp.supports_extension("starttls"):
                context = self.contexts(target.tls)
                try:
                    await smtp.starttls(server_hostname=target.host, tls_context=context)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    if target.tls not in VERIFIED:
                        raise _PlaintextRetry from None
                    raise DeliveryFailure(
                        local_reply(
                            "4.7.5",
                            f"TLS exigé : négociation TLS avec {remote} impossible ou certificat "
                            f"non vérifié ({_why(exc)})",
                            f"TLS required: TLS with {remote} failed or its certificate could "
                            f"not be verified ({_why(exc)})",
                            remote,
                        )
                    ) from None
                await self._hello(smtp, remote)  # RFC 3207 §4.2: forget what was said before
            elif target.tls in VERIFIED:
                raise DeliveryFailure(
                    local_reply(
                        "4.7.10",
                        f"TLS exigé pour ce domaine, mais {remote} ne propose pas STARTTLS",
                        f"TLS required for this domain, but {remote} does not offer STARTTLS",
                        remote,
                    )
                )
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def _transactions(
        self, smtp: aiosmtplib.SMTP, remote: str, transactions: Sequence[Transaction]
    ) -> dict[int, Result]:
        results: dict[int, Result] = {}
        lost = local_reply(
            "4.4.2",
            f"connexion avec {remote} perdue pendant la transaction",
            f"connection with {remote} lost during the transaction",
            remote,
        )
        try:
            for transaction in transactions:
                results.update(await self._transaction(smtp, remote, transaction))
                if not smtp.is_connected:  # e.g. 421: the server closed the session
                    last = results.get(transaction.recipients[-1].key)
                    if last is not None and last.reply.kind == "temporary":
                        lost = last.reply
                    break
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.info("outbound session lost host=%s (%s)", remote, type(exc).__name__)
        for transaction in transactions:
            for recipient in transaction.recipients:
                results.setdefault(recipient.key, Result(lost))
        return results

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, remote: str, transaction: Transaction
    ) -> dict[int, Result]:
        """MAIL, RCPT for each recipient, DATA (RFC 5321 §3.3)."""
        raw, recipients = transaction.raw, transaction.recipients
        dsn = smtp.supports_extension("dsn")
        utf8 = not (
            transaction.mail_from.isascii() and all(r.address.isascii() for r in recipients)
        )
        if utf8 and not smtp.supports_extension("smtputf8"):  # RFC 6531 §3.2
            reply = local_reply(
                "5.6.7",
                f"adresse internationalisée refusée : {remote} ne gère pas SMTPUTF8",
                f"internationalised address: {remote} does not support SMTPUTF8",
                remote,
            )
            return {r.key: Result(reply) for r in recipients}
        options: list[str] = []
        if smtp.supports_extension("size"):  # RFC 1870
            options.append(f"SIZE={len(raw)}")
        if not raw.isascii() and smtp.supports_extension("8bitmime"):  # RFC 6152
            options.append("BODY=8BITMIME")
        if utf8:
            options.append("SMTPUTF8")
        if dsn:  # RFC 3461 §4.3, §4.4
            if transaction.ret:
                options.append(f"RET={transaction.ret}")
            if transaction.envid:
                options.append(f"ENVID={transaction.envid}")
        encoding = "utf-8" if utf8 else "ascii"
        response = await smtp.execute_command(
            b"MAIL",
            f"FROM:<{transaction.mail_from}>".encode(encoding),
            *(option.encode("ascii") for option in options),
        )
        if response.code != 250:
            reply = smtp_reply(response.code, response.message, remote)
            await _reset(smtp)
            return {r.key: Result(reply) for r in recipients}
        results: dict[int, Result] = {}
        accepted: list[Recipient] = []
        for recipient in recipients:
            params: list[str] = []
            if dsn:  # RFC 3461 §4.1, §4.2: passed on as the client gave them
                if recipient.notify:
                    params.append("NOTIFY=" + ",".join(recipient.notify))
                if recipient.orcpt:
                    params.append(f"ORCPT={recipient.orcpt}")
            response = await smtp.execute_command(
                b"RCPT",
                f"TO:<{recipient.address}>".encode(encoding),
                *(param.encode("ascii") for param in params),
            )
            if response.code in (250, 251):
                accepted.append(recipient)
            else:
                results[recipient.key] = Result(smtp_reply(response.code, response.message, remote))
            if not smtp.is_connected:  # 421: what was not answered gets that reply
                closing = Result(smtp_reply(response.code, response.message, remote))
                return {each.key: results.get(each.key, closing) for each in recipients}
        if not accepted:
            await _reset(smtp)
            return results
        try:
            response = await send_data(smtp, raw, self.data_timeout)
            reply = smtp_reply(response.code, response.message, remote)
        except aiosmtplib.SMTPResponseException as exc:
            reply = smtp_reply(exc.code, exc.message, remote)
        for recipient in accepted:
            results[recipient.key] = Result(reply, next_hop_dsn=dsn)
        return results


def data_bytes(raw: bytes, slice_bytes: int = DATA_SLICE) -> bytes:
    """What DATA sends for ``raw``: every line ended by CRLF, a "." doubled at the start of a
    line (RFC 5321 §4.5.2), the end-of-data line (§4.1.1.4) — the bytes aiosmtplib's DATA
    sends. About ``slice_bytes`` at a time, each slice cut just after a line feed, so that it
    starts a line and a CRLF is never split; the interpreter lock is free between slices."""
    pieces: list[bytes] = []
    start = 0
    while start < len(raw):
        feed = raw.find(b"\n", start + slice_bytes - 1)
        end = len(raw) if feed < 0 else feed + 1
        # aiosmtplib's own patterns: a lone CR or LF becomes CRLF (RFC 5321 §2.3.8), then a
        # "." starting a line gets another one (§4.5.2)
        pieces.append(PERIOD_REGEX.sub(b"..", LINE_ENDINGS_REGEX.sub(b"\r\n", raw[start:end])))
        start = end
    if not pieces or not pieces[-1].endswith(b"\r\n"):
        pieces.append(b"\r\n")
    pieces.append(b".\r\n")
    return b"".join(pieces)


async def send_data(smtp: aiosmtplib.SMTP, raw: bytes, timeout: float | None) -> SMTPResponse:
    """DATA with ``raw`` (RFC 5321 §4.1.1.4), its bytes prepared off the event loop from
    :data:`PREPARE_OFF_LOOP_BYTES` on; raises what ``aiosmtplib.SMTP.data`` raises."""
    if len(raw) < PREPARE_OFF_LOOP_BYTES:
        return await smtp.data(raw, timeout=timeout)
    prepared = await asyncio.to_thread(data_bytes, raw)
    try:
        start = await smtp.execute_command(b"DATA", timeout=timeout)
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        # No await between the write and read_response: the reply cannot be missed.
        protocol.write(prepared)
        response = await protocol.read_response(timeout=timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        smtp.close()
        raise
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    return response


def _why(exc: BaseException) -> str:
    """A short, content-free reason for a connection or TLS failure."""
    verify = getattr(exc, "verify_message", None)
    if verify:
        return str(verify)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    """RSET after a refused transaction, so the next one starts clean (RFC 5321 §4.1.1.5)."""
    if smtp.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await smtp.rset()
