"""One SMTP session: the protocol state machine (RFC 5321 §4.1, §3.3), no policy.

States: greeting → EHLO/HELO → [STARTTLS → EHLO] → [AUTH] → MAIL → RCPT… → DATA → (MAIL …).
Each decision about *who* or *what* is delegated to the :class:`~.handler.SmtpHandler`; this
module enforces the grammar, the order of commands, and the listener's limits.

Extensions: SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), PIPELINING (RFC 2920),
ENHANCEDSTATUSCODES (RFC 2034, RFC 3463), DSN (RFC 3461), STARTTLS (RFC 3207), AUTH (RFC 4954),
CHUNKING (RFC 3030: BDAT; BINARYMIME is not offered, so a message is still lines ending in
CRLF and gets the same content checks as after DATA).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import time
from collections import Counter
from dataclasses import dataclass

from caducee.protocols.sasl import SaslError, decode_response
from caducee.protocols.smtp import replies
from caducee.protocols.smtp.data import checked, read_chunk, read_data
from caducee.protocols.smtp.errors import internal_error, reply_for_error
from caducee.protocols.smtp.handler import SmtpHandler
from caducee.protocols.smtp.limits import AUTH_LINE_MAX, READ_LINE_MAX, SmtpLimits, line_limit
from caducee.protocols.smtp.parser import (
    Auth,
    Bdat,
    Command,
    Hello,
    Mail,
    ParseError,
    Rcpt,
    Simple,
    parse_command,
)
from caducee.protocols.smtp.replies import Reply, bilingual, closing, multiline
from caducee.protocols.smtp.sasl import Challenge, Credentials, SaslExchange
from caducee.protocols.smtp.state import SessionInfo, Transaction
from caducee.protocols.smtp.stream import LineTooLong, SessionTimeout, SmtpStream
from caducee.protocols.tcp import Connection, ConnectionClosed
from caducee.services import memory_trim
from caducee.services.envelope import EnvelopeRecipient

log = logging.getLogger(__name__)

#: How long the last replies may take to leave when the session ends.
FINAL_FLUSH_TIMEOUT = 5.0
HELP_TEXT = (
    "Commandes / commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
    "Voir / see RFC 5321",
)


@dataclass(frozen=True)
class SessionConfig:
    listener: str
    hostname: str
    #: The context for STARTTLS; None: STARTTLS is not offered.
    tls_context: ssl.SSLContext | None
    limits: SmtpLimits


class SmtpSession:
    def __init__(self, conn: Connection, handler: SmtpHandler, config: SessionConfig) -> None:
        self.conn = conn
        self.handler = handler
        self.config = config
        self.limits = config.limits
        self.stream = SmtpStream(conn, config.limits.idle_timeout)
        self.info = SessionInfo(
            config.listener,
            conn.ip,
            tls=conn.tls_description(),
            peer_certificate=conn.peer_certificate(),
        )
        self.transaction: Transaction | None = None
        self.done = False
        self.errors = 0
        self.messages = 0
        self.codes: Counter[int] = Counter()
        self.end = "quit"

    # --- replies -----------------------------------------------------------------------------

    def reply(self, reply: Reply, *, counts: bool = True) -> None:
        """Queue ``reply``; a 5xx to a bad command counts towards the session's error limit."""
        self.stream.send(reply)
        self.codes[reply.code] += 1
        if reply.closes:
            self.done = True
        if counts and reply.code >= 500 and not self.done:
            self.errors += 1
            if self.errors >= self.limits.max_errors:
                self.end = "errors"
                self.reply(closing(replies.TOO_MANY_ERRORS, self.config.hostname))

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        started = time.monotonic()
        self.reply(replies.greeting(self.config.hostname))
        try:
            while not self.done:
                await self.next_command()
        except SessionTimeout:
            self.end = "timeout"
            self.reply(closing(replies.TIMEOUT, self.config.hostname))
        except (ConnectionClosed, OSError, asyncio.IncompleteReadError):
            self.end = "disconnected"
        except Exception as error:  # a bug here: say so, keep the details in the log only
            self.end = "error"
            self.reply(closing(internal_error(error, "session", 421), self.config.hostname))
        except asyncio.CancelledError:
            self.end = "shutdown"
            with contextlib.suppress(Exception):  # best effort, without waiting
                self.reply(closing(replies.SHUTTING_DOWN, self.config.hostname))
                self.stream.write_now()
            self.log_end(started)
            raise
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.stream.flush(), FINAL_FLUSH_TIMEOUT)
        self.log_end(started)

    def log_end(self, started: float) -> None:
        codes = ",".join(f"{code}:{count}" for code, count in sorted(self.codes.items()))
        log.info(
            "smtp session end listener=%s ip=%s tls=%s authenticated=%s messages=%d "
            "errors=%d codes=%s end=%s duration=%.3fs",
            self.config.listener,
            self.info.ip,
            self.info.tls.replace(" ", "/") or "no",
            "yes" if self.info.login else "no",
            self.messages,
            self.errors,
            codes,
            self.end,
            time.monotonic() - started,
        )

    async def next_command(self) -> None:
        try:
            line = await self.stream.read_line(READ_LINE_MAX, self.limits.idle_timeout)
        except LineTooLong:
            self.reply(replies.LINE_TOO_LONG)
            return
        verb = line.split(b" ", 1)[0].upper().decode("ascii", "replace")
        if len(line) + 2 > line_limit(verb):
            self.reply(replies.LINE_TOO_LONG)
            return
        try:
            command = parse_command(line)
        except ParseError as error:
            self.reply(error.reply)
            return
        await self.dispatch(command)

    async def dispatch(self, command: Command) -> None:
        if isinstance(command, Hello):
            self.hello(command)
        elif isinstance(command, Mail):
            await self.mail(command)
        elif isinstance(command, Rcpt):
            await self.rcpt(command)
        elif isinstance(command, Auth):
            await self.auth(command)
        elif isinstance(command, Bdat):
            await self.bdat(command)
        else:
            await self.simple(command)

    async def simple(self, command: Simple) -> None:
        verb = command.verb
        if verb == "DATA":
            await self.data()
        elif verb == "STARTTLS":
            await self.starttls()
        elif verb == "RSET":
            self.transaction = None  # RFC 5321 §4.1.1.5
            self.reply(replies.RESET_OK)
        elif verb == "NOOP":
            self.reply(replies.OK)
        elif verb == "QUIT":
            self.reply(replies.BYE)
        elif verb == "VRFY":
            # RFC 5321 §3.5.3: 252, so addresses cannot be enumerated.
            self.reply(replies.CANNOT_VRFY if command.argument else replies.BAD_ARGUMENT)
        elif verb == "HELP":
            self.reply(multiline(214, HELP_TEXT, "2.0.0"))
        else:  # EXPN: mailing lists are not disclosed
            self.reply(replies.NOT_IMPLEMENTED)

    # --- EHLO / HELO (RFC 5321 §4.1.1.1) -----------------------------------------------------

    def ehlo_keywords(self) -> list[str]:
        """RFC 5321 §4.1.1.1: exactly the extensions this session can use now."""
        keywords = [
            f"SIZE {self.limits.max_message_bytes}",
            "8BITMIME",
            "SMTPUTF8",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
            "DSN",
            "CHUNKING",
        ]
        if self.config.tls_context is not None and not self.info.tls:
            keywords.append("STARTTLS")
        return keywords + self.handler.ehlo_keywords(self.info)

    def hello(self, command: Hello) -> None:
        self.transaction = None  # RFC 5321 §4.1.4: EHLO resets the transaction
        self.info.helo = command.domain
        self.info.esmtp = command.verb == "EHLO"
        first = f"{self.config.hostname} Bonjour [{self.info.ip}]"
        if not self.info.esmtp:
            self.reply(Reply(250, "", (first,)))
            return
        self.reply(multiline(250, [first, *self.ehlo_keywords()]))

    # --- STARTTLS (RFC 3207) -----------------------------------------------------------------

    async def starttls(self) -> None:
        context = self.config.tls_context
        if self.info.tls:
            self.reply(replies.TLS_ACTIVE)
            return
        if context is None:
            self.reply(replies.TLS_UNAVAILABLE)
            return
        if not self.info.helo:
            self.reply(replies.SEND_HELO_FIRST)
            return
        if self.stream.has_input():
            # RFC 3207 §5 / RFC 2920 §3.1: STARTTLS ends a pipeline group. Anything sent
            # after it in clear could be a man-in-the-middle's injection: close.
            self.end = "pipelined-starttls"
            self.reply(replies.PIPELINED_STARTTLS)
            self.done = True
            return
        self.reply(replies.READY_FOR_TLS)
        self.stream.write_now()  # no await between the 220 and the upgrade (see write_now)
        await self.conn.start_tls(context)
        # RFC 3207 §4.2: forget everything learnt before TLS; the client says EHLO again.
        self.transaction = None
        self.info = SessionInfo(
            self.config.listener,
            self.conn.ip,
            tls=self.conn.tls_description(),
            peer_certificate=self.conn.peer_certificate(),
        )

    # --- AUTH (RFC 4954) ---------------------------------------------------------------------

    async def auth(self, command: Auth) -> None:
        if not self.info.esmtp:
            self.reply(replies.SEND_HELO_FIRST)
            return
        if self.info.login:
            self.reply(replies.ALREADY_AUTHENTICATED)
            return
        if self.transaction is not None:
            self.reply(replies.AUTH_IN_TRANSACTION)
            return
        refusal = self.handler.auth_refusal(self.info)
        if refusal is not None:
            self.reply(refusal)
            return
        mechanism = self.handler.sasl.get(command.mechanism)
        if mechanism is None:
            self.reply(replies.AUTH_UNKNOWN_MECHANISM)
            return
        response: bytes | None = None
        if command.initial is not None:
            response = self._decode_response(command.initial)
            if response is None:
                return
        credentials = await self._exchange(mechanism.start(), response)
        if credentials is None:
            return
        try:
            login = await self.handler.on_auth(self.info, credentials)
        except Exception as error:
            self.reply(reply_for_error(error, "auth"))
            return
        self.info.login = login
        self.reply(replies.AUTH_OK)

    def _decode_response(self, text: str) -> bytes | None:
        """A base64 SASL response ("=" is the empty one); None after replying 501."""
        try:
            return decode_response(text)
        except SaslError:
            self.reply(replies.AUTH_BAD_BASE64)
            return None

    async def _exchange(self, exchange: SaslExchange, response: bytes | None) -> Credentials | None:
        """Run the SASL exchange; None once a failure has been answered."""
        while True:
            step = exchange.step(response)
            if isinstance(step, Credentials):
                return step
            if not isinstance(step, Challenge):
                self.reply(bilingual(501, "5.5.2", step.fr, step.en))
                return None
            self.reply(Reply(334, "", (base64.b64encode(step.data).decode("ascii"),)))
            try:
                line = await self.stream.read_line(AUTH_LINE_MAX, self.limits.idle_timeout)
            except LineTooLong:
                self.reply(replies.AUTH_LINE_TOO_LONG)
                return None
            if line == b"*":  # RFC 4954 §4: the client cancels
                self.reply(replies.AUTH_CANCELLED)
                return None
            try:
                text = line.decode("ascii")
            except UnicodeDecodeError:
                self.reply(replies.AUTH_BAD_BASE64)
                return None
            response = self._decode_response(text)
            if response is None:
                return None

    # --- the mail transaction (RFC 5321 §3.3) ------------------------------------------------

    def _parameter_refusal(self, keywords: frozenset[str]) -> Reply | None:
        if keywords and not self.info.esmtp:
            return bilingual(
                555,
                "5.5.4",
                "Parametres ESMTP refuses apres HELO : utilisez EHLO",
                "ESMTP parameters not recognized after HELO: use EHLO",
            )
        if "AUTH" in keywords and not self.handler.sasl:
            return bilingual(
                555, "5.5.4", "Parametre AUTH non reconnu", "AUTH parameter not recognized"
            )
        return None

    async def mail(self, command: Mail) -> None:
        if not self.info.helo:
            self.reply(replies.SEND_HELO_FIRST)
            return
        if self.transaction is not None:
            self.reply(replies.NESTED_MAIL)
            return
        refusal = self._parameter_refusal(command.keywords)
        if refusal is not None:
            self.reply(refusal)
            return
        if not command.path.is_ascii and not command.params.smtputf8:
            self.reply(replies.NON_ASCII_ADDRESS)
            return
        size = command.params.size
        if size is not None and size > self.limits.max_message_bytes:  # RFC 1870 §6.1
            self.reply(self._too_big(), counts=False)
            return
        try:
            mail_from = await self.handler.on_mail(self.info, command)
        except Exception as error:
            self.reply(reply_for_error(error, "mail"))
            return
        self.transaction = Transaction(command, mail_from)
        self.reply(replies.SENDER_OK)

    def _too_big(self) -> Reply:
        limit = self.limits.max_message_bytes
        return bilingual(
            552,
            "5.3.4",
            f"Message trop volumineux : {limit} octets au plus",
            f"Message size exceeds fixed maximum message size ({limit} octets)",
        )

    async def rcpt(self, command: Rcpt) -> None:
        transaction = self.transaction
        if transaction is None:
            self.reply(replies.NEED_MAIL)
            return
        refusal = self._parameter_refusal(command.keywords)
        if refusal is not None:
            self.reply(refusal)
            return
        if transaction.accepted_rcpts >= self.limits.max_recipients:
            self.reply(replies.TOO_MANY_RECIPIENTS)  # RFC 5321 §4.5.3.1.10
            return
        if not command.path.is_ascii and not transaction.mail.params.smtputf8:
            self.reply(replies.NON_ASCII_ADDRESS)
            return
        try:
            address = await self.handler.on_rcpt(self.info, transaction, command)
        except Exception as error:
            self.reply(reply_for_error(error, "rcpt"))
            return
        params = command.params
        transaction.add_recipient(EnvelopeRecipient(address, params.notify, params.orcpt))
        self.reply(replies.RECIPIENT_OK)

    async def data(self) -> None:
        transaction = self.transaction
        if transaction is None:
            self.reply(replies.NEED_MAIL)
            return
        if not transaction.recipients:
            self.reply(replies.NO_VALID_RECIPIENTS)
            return
        if transaction.chunks is not None:  # RFC 3030 §2: BDAT and DATA do not mix
            self.reply(replies.DATA_AFTER_BDAT)
            return
        self.reply(replies.START_DATA)
        received = await read_data(
            self.stream, self.limits.max_message_bytes, self.limits.data_timeout
        )
        self.transaction = None  # RFC 5321 §4.1.1.4: the transaction ends with the data
        if received.raw is None:
            self.reply(self._too_big(), counts=False)
            return
        await self._accept_message(transaction, received.raw)

    async def bdat(self, command: Bdat) -> None:
        """RFC 3030 §2: the chunk's octets are always read (the stream stays in step), then
        refused if the command is; an error ends the transaction, as the client then gives
        up on the message (§2: "the sender-SMTP ... should RSET")."""
        transaction = self.transaction
        limit = self.limits.max_message_bytes
        taken = 0 if transaction is None or transaction.chunks is None else len(transaction.chunks)
        chunk = await read_chunk(
            self.stream,
            command.size,
            keep=taken + command.size <= limit,
            timeout=self.limits.data_timeout,
        )
        if transaction is None:
            self.reply(replies.NEED_MAIL)
            return
        if not transaction.recipients:
            self.transaction = None
            self.reply(replies.NO_VALID_RECIPIENTS)
            return
        if chunk is None:
            self.transaction = None
            self.reply(self._too_big(), counts=False)
            return
        if transaction.chunks is None:
            transaction.chunks = bytearray()
        transaction.chunks += chunk
        if not command.last:
            self.reply(replies.chunk_received(command.size))
            return
        self.transaction = None
        await self._accept_message(transaction, bytes(transaction.chunks))

    async def _accept_message(self, transaction: Transaction, raw: bytes) -> None:
        memory_trim.note(len(raw))  # a big message's copies given back once the burst is over
        envelope = transaction.envelope()
        problem = await checked(
            raw,
            smtputf8=envelope.smtputf8,
            max_header_fields=self.limits.max_header_fields,
        )
        if problem is not None:
            self.reply(problem, counts=False)
            return
        try:
            await self.handler.on_data(self.info, envelope, raw)
        except Exception as error:
            self.reply(reply_for_error(error, "data"), counts=False)
            return
        self.messages += 1
        self.reply(replies.MESSAGE_ACCEPTED)
