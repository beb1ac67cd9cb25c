"""One POP3 session: AUTHORIZATION → TRANSACTION → UPDATE (RFC 1939 §3).

Replies are US-ASCII (RFC 1939 §3); human texts are French without accents, with RFC 2449 §8
response codes ([AUTH], [IN-USE], [SYS/TEMP], [LOGIN-DELAY]) where they apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import unicodedata
from dataclasses import dataclass, field

from caducee.app import App
from caducee.domain.pop3_octets import pop3_lines
from caducee.errors import AccessDenied, CaduceeError, NotFound, RetentionHold, TemporaryFailure
from caducee.protocols.sasl import SaslError, decode_response, parse_plain
from caducee.protocols.tcp import Connection, ConnectionClosed, LineTooLong
from caducee.services import maildrop
from caducee.services.auth import authenticate_mail, session_allowed
from caducee.services.events import CutWatch, mailbox_events, read_unless_cut
from caducee.services.lockout import AccountLocked

log = logging.getLogger(__name__)

#: RFC 2449 §4: command lines up to 255 octets; AUTH responses (RFC 5034 §4) may be longer.
COMMAND_LINE_LIMIT = 255
AUTH_LINE_LIMIT = 8192
#: RFC 1939 §3: an inactivity autologout timer of at least 10 minutes.
IDLE_TIMEOUT = 600.0
AUTH_TIMEOUT = 60.0
MAX_BAD_COMMANDS = 10


def ascii_text(text: str) -> str:
    """A French text as a POP3 reply may carry it (RFC 1939 §3: US-ASCII): accents dropped."""
    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return decomposed.encode("ascii", "ignore").decode().replace("\r", " ").replace("\n", " ")


@dataclass
class Pop3Config:
    hostname: str
    tls_context: ssl.SSLContext | None
    #: Whether the session started on implicit TLS (995) rather than plain text (110).
    implicit_tls: bool


@dataclass
class Pop3Session:
    app: App
    conn: Connection
    config: Pop3Config
    login: str = ""
    pending_user: str = ""
    drop: maildrop.Maildrop | None = None
    deleted: set[int] = field(default_factory=set)  # 1-based message numbers
    bad_commands: int = 0
    #: The account logged in (a mailbox login: its owner): a cut of it, or of the maildrop's
    #: mailbox, ends the session (issue 19).
    account_id: int | None = None
    cut: CutWatch | None = None
    released: bool = False  # the maildrop was given back (QUIT, or the end of the session)

    async def reply(self, line: str) -> None:
        await self.conn.write(line.encode("ascii", "replace") + b"\r\n")

    def capabilities(self) -> list[str]:
        """RFC 2449 §6: what this session offers now."""
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
        if self.drop is None:
            if self.conn.tls:
                caps += ["USER", "SASL PLAIN"]
            elif self.config.tls_context is not None:
                caps.append("STLS")
        caps.append("IMPLEMENTATION Caducee")
        return caps

    async def run(self) -> None:
        await self.reply(f"+OK {self.config.hostname} POP3 Caducee pret")
        async with contextlib.AsyncExitStack() as stack:
            while True:
                if self.cut is None and self.drop is not None and self.account_id is not None:
                    self.cut = await stack.enter_async_context(
                        mailbox_events(self.app).watch_cuts(self.account_id, {self.drop.mailbox_id})
                    )
                try:
                    if await self.one_command():
                        return
                except ConnectionClosed as closed:
                    if str(closed) == "cut":
                        return
                    raise

    async def next_line(self, timeout: float) -> bytes:
        """The next command line, unless a cut ends the session while it waits."""
        return await read_unless_cut(
            self.conn.readline(COMMAND_LINE_LIMIT + 2, timeout), self.cut, self.end_if_cut
        )

    async def end_if_cut(self) -> None:
        """After a cut naming this session: if its account or its maildrop's mailbox is indeed
        disabled or gone (the database says), say why and close. RFC 1939 has no unsolicited
        reply: the client reads this line as the answer to its next command, then the end.
        Nothing marked for deletion is deleted (no UPDATE state, RFC 1939 §6)."""
        cut = self.cut
        if cut is None or not cut.fired.is_set():
            return
        cut.fired.clear()
        if await session_allowed(self.app, self.account_id, cut.mailbox_ids):
            return
        await self.reply(
            "-ERR acces desactive ou supprime par l'administrateur du cabinet, deconnexion"
        )
        raise ConnectionClosed("cut")

    async def one_command(self) -> bool:
        """Read and answer one command; True when the session ends."""
        timeout = IDLE_TIMEOUT if self.drop is not None else AUTH_TIMEOUT
        try:
            line = await self.next_line(timeout)
        except LineTooLong:
            return await self.bad("-ERR ligne trop longue (255 octets au plus)")
        command, _, argument = line.rstrip(b"\r\n").decode("ascii", "replace").partition(" ")
        verb = command.upper()
        handler = getattr(self, f"cmd_{verb.lower()}", None) if verb.isalpha() else None
        if handler is None or not self.allowed(verb):
            return await self.bad("-ERR commande inconnue ou interdite dans cet etat")
        if await handler(argument):
            return True
        await self.end_if_cut()
        return False

    def allowed(self, verb: str) -> bool:
        authorization = {"USER", "PASS", "AUTH", "STLS", "CAPA", "QUIT"}
        transaction = {
            "STAT",
            "LIST",
            "RETR",
            "DELE",
            "NOOP",
            "RSET",
            "TOP",
            "UIDL",
            "CAPA",
            "QUIT",
        }
        return verb in (transaction if self.drop is not None else authorization)

    async def bad(self, line: str) -> bool:
        """Answer a bad command; True when the session must end (too many)."""
        self.bad_commands += 1
        if self.bad_commands >= MAX_BAD_COMMANDS:
            await self.reply("-ERR [SYS/PERM] trop d'erreurs, au revoir")
            return True
        await self.reply(line)
        return False

    # --- AUTHORIZATION state ----------------------------------------------------------------

    async def cmd_capa(self, _argument: str) -> bool:
        await self.reply("+OK liste des capacites")
        for capability in self.capabilities():
            await self.reply(capability)
        await self.reply(".")
        return False

    async def cmd_stls(self, argument: str) -> bool:
        # RFC 2595 §4: only before authentication, only without TLS, no pipelined data after.
        if argument or self.conn.tls or self.config.tls_context is None:
            await self.reply("-ERR STLS impossible ici")
            return False
        await self.reply("+OK debut de la negociation TLS")
        if self.conn.pending_input():
            return True  # commands pipelined before TLS could be injected: drop the session
        await self.conn.start_tls(self.config.tls_context)
        self.pending_user = ""
        return False

    def require_tls(self) -> bool:
        return not self.conn.tls

    async def cmd_user(self, argument: str) -> bool:
        if self.require_tls():
            await self.reply("-ERR [AUTH] utilisez STLS avant de vous identifier")
            return False
        if not argument or len(argument) > 320:
            await self.reply("-ERR identifiant attendu")
            return False
        self.pending_user = argument.strip()
        await self.reply("+OK envoyez le mot de passe (mot de passe d'application)")
        return False

    async def cmd_pass(self, argument: str) -> bool:
        if self.require_tls() or not self.pending_user:
            await self.reply("-ERR USER d'abord, apres STLS")
            return False
        user, self.pending_user = self.pending_user, ""
        return await self.login_with(user, argument)

    async def cmd_auth(self, argument: str) -> bool:
        if self.require_tls():
            await self.reply("-ERR [AUTH] utilisez STLS avant de vous identifier")
            return False
        mechanism, _, initial = argument.partition(" ")
        if not mechanism:  # RFC 5034 §4: AUTH without argument lists the mechanisms
            await self.reply("+OK mecanismes")
            await self.reply("PLAIN")
            await self.reply(".")
            return False
        if mechanism.upper() != "PLAIN":
            await self.reply("-ERR mecanisme non pris en charge (PLAIN)")
            return False
        if not initial:
            await self.reply("+ ")
            try:
                initial = (
                    (await self.conn.readline(AUTH_LINE_LIMIT, AUTH_TIMEOUT))
                    .rstrip(b"\r\n")
                    .decode("ascii", "replace")
                )
            except LineTooLong:
                await self.reply("-ERR reponse trop longue")
                return False
        if initial == "*":
            await self.reply("-ERR authentification annulee")
            return False
        try:  # RFC 5034 §4 frames it; RFC 4616 PLAIN, decoded as every door does
            plain = parse_plain(decode_response(initial))
        except SaslError as error:
            # RFC 3206 §4: [AUTH] when the credentials themselves are refused.
            await self.reply(
                f"-ERR [AUTH] {error.text}" if error.authorization else f"-ERR {error.text}"
            )
            return False
        return await self.login_with(plain.authcid, plain.password)

    async def login_with(self, user: str, password: str) -> bool:
        try:
            principal = await authenticate_mail(self.app, user, password, "pop3", self.conn.ip)
        except AccountLocked as locked:
            await asyncio.sleep(1)
            await self.reply(
                f"-ERR [LOGIN-DELAY] compte temporairement verrouille, reessayez dans "
                f"{locked.retry_after_seconds} s"
            )
            return False
        except AccessDenied:
            await asyncio.sleep(1)  # slows down guessing on one connection
            await self.reply("-ERR [AUTH] identifiant ou mot de passe d'application incorrect")
            return False
        try:
            # The maildrop is the login's own Inbox: an account's personal mailbox, or the
            # mailbox a mailbox login (a TLT mailbox's billing software) names.
            drop = await maildrop.open_maildrop(self.app, principal.login, self.conn.ip)
        except CaduceeError:
            await self.reply("-ERR [SYS/TEMP] boite indisponible, reessayez plus tard")
            return False
        # RFC 1939 §8 / RFC 2449 §8.1.2: one session per maildrop at a time.
        if not await maildrop.open_maildrops(self.app).acquire(drop.mailbox_id):
            await self.reply("-ERR [IN-USE] boite deja ouverte par une autre session POP3")
            return False
        self.login, self.drop = principal.login, drop
        self.account_id = principal.account.id
        await self.reply(f"+OK {len(drop.messages)} message(s)")
        return False

    # --- TRANSACTION state ------------------------------------------------------------------

    def live(self) -> list[tuple[int, maildrop.DropMessage]]:
        assert self.drop is not None
        return [(n, m) for n, m in enumerate(self.drop.messages, 1) if n not in self.deleted]

    def message(self, argument: str) -> tuple[int, maildrop.DropMessage] | None:
        assert self.drop is not None
        if not argument.isdigit() or len(argument) > 9:
            return None
        number = int(argument)
        if not 1 <= number <= len(self.drop.messages) or number in self.deleted:
            return None
        return number, self.drop.messages[number - 1]

    async def cmd_stat(self, _argument: str) -> bool:
        live = self.live()
        await self.reply(f"+OK {len(live)} {sum(m.size for _, m in live)}")
        return False

    async def listing(self, argument: str, value: str) -> None:
        if argument:
            found = self.message(argument.strip())
            if found is None:
                await self.reply("-ERR pas de tel message")
                return
            number, item = found
            await self.reply(f"+OK {number} {getattr(item, value)}")
            return
        await self.reply("+OK liste")
        for number, item in self.live():
            await self.reply(f"{number} {getattr(item, value)}")
        await self.reply(".")

    async def cmd_list(self, argument: str) -> bool:
        await self.listing(argument, "size")
        return False

    async def cmd_uidl(self, argument: str) -> bool:
        await self.listing(argument, "uidl")
        return False

    async def send_message(self, item: maildrop.DropMessage, body_lines: int | None) -> None:
        assert self.drop is not None
        try:
            raw = await maildrop.retrieve(self.app, self.drop, item)
        except NotFound:
            await self.reply("-ERR message supprime par un autre client")
            return
        except TemporaryFailure:  # RFC 3206 §4: SYS/TEMP, a problem that should go away
            await self.reply("-ERR [SYS/TEMP] contenu momentanement illisible, reessayez plus tard")
            return
        if body_lines is not None:
            head, separator, body = raw.partition(b"\r\n\r\n")
            if not separator:
                head, separator, body = raw.partition(b"\n\n")
            raw = head + separator + b"".join(body.splitlines(keepends=True)[:body_lines])
        lines = pop3_lines(raw)  # what LIST and STAT counted (domain/pop3_octets.py)
        # RFC 1939 §3: CRLF line ends, byte-stuff lines starting with ".", end with ".".
        out = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
        await self.conn.write(b"+OK message suit\r\n" + out + b".\r\n")

    async def cmd_retr(self, argument: str) -> bool:
        found = self.message(argument.strip())
        if found is None:
            await self.reply("-ERR pas de tel message")
            return False
        await self.send_message(found[1], None)
        return False

    async def cmd_top(self, argument: str) -> bool:
        number, _, count = argument.strip().partition(" ")
        found = self.message(number)
        if found is None or not count.isdigit():
            await self.reply("-ERR syntaxe : TOP message lignes")
            return False
        await self.send_message(found[1], int(count))
        return False

    async def cmd_dele(self, argument: str) -> bool:
        found = self.message(argument.strip())
        if found is None:
            await self.reply("-ERR pas de tel message (ou deja supprime)")
            return False
        assert self.drop is not None
        try:  # RFC 1939 §5 DELE: refused at once, with the reason, when it must be kept
            await maildrop.may_delete(self.app, self.drop, found[1])
        except RetentionHold as held:
            await self.reply(f"-ERR {ascii_text(held.message('fr'))}")
            return False
        self.deleted.add(found[0])
        await self.reply(f"+OK message {found[0]} supprime")
        return False

    async def cmd_noop(self, _argument: str) -> bool:
        await self.reply("+OK")
        return False

    async def cmd_rset(self, _argument: str) -> bool:
        self.deleted.clear()
        await self.cmd_stat("")
        return False

    async def cmd_quit(self, _argument: str) -> bool:
        if self.drop is None:
            await self.reply("+OK au revoir")
            return True
        # RFC 1939 §6: the UPDATE state removes the messages marked as deleted.
        doomed = [self.drop.messages[n - 1] for n in sorted(self.deleted)]
        try:
            removed = await maildrop.delete(self.app, self.drop, doomed)
        except CaduceeError:
            await self.release()
            await self.reply("-ERR [SYS/TEMP] suppression impossible, messages conserves")
            return True
        self.deleted.clear()
        # RFC 1939 §6: the maildrop is released before the answer, so that a client logging in
        # again right after QUIT finds it free.
        await self.release()
        await self.reply(f"+OK {removed} message(s) supprime(s), au revoir")
        return True

    async def release(self) -> None:
        """Give the maildrop back (at QUIT, or when the session ends otherwise); once."""
        if self.drop is not None and not self.released:
            self.released = True
            await maildrop.open_maildrops(self.app).release(self.drop.mailbox_id)
