"""One IMAP session: reading commands (with literals), states, the selected folder's view, and
the untagged updates other sessions' changes cause (RFC 3501 §5.5, §7; RFC 9051 §7).

The selected folder is kept as the client knows it: UIDs in sequence-number order, the flags
last reported, the MODSEQ up to which changes were read. After each command the session reads
what changed since (one indexed query) and reports it: new messages (EXISTS), flag changes
(FETCH FLAGS) and expunges — never EXPUNGE while answering FETCH, STORE or SEARCH by sequence
numbers (§7.4.1): those are held until a later command.

Response texts are ASCII (French without accents), like POP3's.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from caducee.app import App
from caducee.domain.folder_index import FolderIndex
from caducee.domain.model import Flag, IndexEntry, MessageSummary
from caducee.errors import (
    AccessDenied,
    AlreadyExists,
    BudgetExceeded,
    CaduceeError,
    NotFound,
    QuotaExceeded,
    RetentionHold,
    TemporaryFailure,
    VirusFound,
)
from caducee.protocols.imap import parser
from caducee.protocols.imap.protocol import Command, ParseError, SeqSet, format_set, resolve_set
from caducee.protocols.tcp import Connection, ConnectionClosed, LineTooLong
from caducee.services import mailstore
from caducee.services.auth import session_allowed
from caducee.services.events import CutWatch, mailbox_events, read_unless_cut

log = logging.getLogger(__name__)

LINE_LIMIT = 64 * 1024
#: Literals in commands other than APPEND (names, search strings, SASL): small.
SMALL_LITERAL = 64 * 1024
COMMAND_LIMIT = 1024 * 1024
#: RFC 9051 §5.4: at least 30 minutes of inactivity before an autologout (IDLE included).
AUTH_IDLE_TIMEOUT = 30 * 60.0
PREAUTH_TIMEOUT = 60.0
MAX_BAD_COMMANDS = 20
#: Flush the output buffer when it grows past this (large FETCH responses).
FLUSH_BYTES = 256 * 1024


class State(Enum):
    NOT_AUTHENTICATED = 1
    AUTHENTICATED = 2
    SELECTED = 3
    LOGOUT = 4


@dataclass
class ImapConfig:
    hostname: str
    tls_context: ssl.SSLContext | None
    implicit_tls: bool
    max_message_bytes: int


class Respond(Exception):
    """End a command with a tagged NO or BAD (ASCII text, optional [CODE])."""

    def __init__(self, status: str, text: str, code: str = "") -> None:
        super().__init__(text)
        self.status, self.text, self.code = status, text, code


def no(text: str, code: str = "") -> Respond:
    return Respond("NO", text, code)


def bad(text: str) -> Respond:
    return Respond("BAD", text)


@functools.lru_cache(maxsize=256)
def _system_flags_text(flags: int) -> str:
    """:func:`flags_text` of a message without keywords (one per message of a full sync)."""
    return flags_text(flags, ())


def flags_text(flags: int, keywords: str | Sequence[str]) -> str:
    names = [name for name, bit in Flag.NAMES.items() if flags & bit]
    words = keywords.split() if isinstance(keywords, str) else list(keywords)
    return "(" + " ".join(names + words) + ")"


def error_response(error: CaduceeError) -> Respond:
    """Map a service refusal to an IMAP NO with a response code (RFC 5530)."""
    text = error.message("fr")
    ascii_text = text.encode("ascii", "ignore").decode() if text.isascii() else _ascii(text)
    if isinstance(error, mailstore.NonExistent):
        return no(ascii_text, "NONEXISTENT")
    if isinstance(error, RetentionHold):  # RFC 5530 §3: the operation violates a rule
        return no(ascii_text, "CANNOT")
    if isinstance(error, TemporaryFailure):  # RFC 5530 §3: a subsystem is down (antivirus…)
        return no(ascii_text, "UNAVAILABLE")
    if isinstance(error, VirusFound):  # refused for what it is, not for who asks
        return no(ascii_text, "CANNOT")
    if isinstance(error, (mailstore.NoPermission, AccessDenied)):
        return no(ascii_text, "NOPERM")
    if isinstance(error, QuotaExceeded):
        return no(ascii_text, "OVERQUOTA")
    if isinstance(error, BudgetExceeded):  # RFC 5530 §3: a server limit, not the user's
        return no(_ascii(f"{error.fr} / {error.en}"), "LIMIT")  # what to do, in both languages
    if isinstance(error, AlreadyExists):
        return no(ascii_text, "ALREADYEXISTS")
    if isinstance(error, mailstore.HasChildren):
        return no(ascii_text, "HASCHILDREN")
    if isinstance(error, NotFound):
        return no(ascii_text, "NONEXISTENT")
    return no(ascii_text, "CANNOT")


def _ascii(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'").replace("«", '"'))
    return decomposed.replace("»", '"').encode("ascii", "ignore").decode()


@dataclass
class Selected:
    """The selected folder as this client knows it: the sequence map (RFC 3501 §2.3.1.2) with
    each message's state, kept compactly (``domain.folder_index``)."""

    of: mailstore.OpenFolder
    readonly: bool
    rows: FolderIndex
    modseq: int
    uidnext: int
    uidvalidity: int
    pending_expunge: set[int] = field(default_factory=set)
    recent: set[int] = field(default_factory=set)  # \Recent for this session (§2.3.2)
    keywords: set[str] = field(default_factory=set)  # announced in FLAGS (§7.2.6)

    @property
    def uids(self) -> Sequence[int]:
        """UIDs in sequence-number order (read only: change ``rows``)."""
        return self.rows.uids

    def seq_of(self, uid: int) -> int:
        return self.rows.position(uid) + 1

    def resolve(self, ranges: SeqSet, by_uid: bool) -> list[tuple[int, IndexEntry]]:
        """(sequence number, row) of each message a set names, in order; messages expunged
        but not yet reported are left out."""
        at = self.rows.at
        return [(index + 1, at(index)) for index in self.positions(ranges, by_uid)]

    def positions(self, ranges: SeqSet, by_uid: bool) -> list[int]:
        """Positions in ``rows`` (sequence number - 1) of the messages a set names, in order;
        messages expunged but not yet reported are left out. No entry is built: a full sync
        of 100,000 messages built one each (issue 17)."""
        uids = self.rows.uids
        positions: list[int] = []
        if by_uid:
            if not uids:
                return []
            for low, high in resolve_set(ranges, uids[-1]):
                start = bisect.bisect_left(uids, low)
                stop = bisect.bisect_right(uids, high)
                positions.extend(range(start, stop))
        else:
            count = len(uids)
            for low, high in resolve_set(ranges, count):
                if low < 1 or high > count:
                    raise bad("numero de message invalide")
                positions.extend(range(low - 1, high))
        if len(ranges) > 1:  # overlapping ranges name a message once
            positions = sorted(set(positions))
        pending = self.pending_expunge
        if pending:
            positions = [index for index in positions if uids[index] not in pending]
        return positions


Handler = Callable[["Session", Command], Awaitable[None]]


@dataclass
class Session:
    app: App
    conn: Connection
    config: ImapConfig
    state: State = State.NOT_AUTHENTICATED
    login: str = ""
    selected: Selected | None = None
    enabled: set[str] = field(default_factory=set)
    bad_commands: int = 0
    out: bytearray = field(default_factory=bytearray)
    condstore_on: bool = False  # RFC 7162 §3.1: once a CONDSTORE-enabling command was used
    client_id: str = ""
    #: The account logged in (a mailbox login: its owner) and the mailbox of a mailbox login.
    account_id: int | None = None
    login_mailbox_id: int | None = None
    #: Set once logged in: a cut naming the account or an open mailbox ends the session.
    cut: CutWatch | None = None

    # --- output ------------------------------------------------------------------------------

    def untagged(self, line: str | bytes) -> None:
        data = line.encode("ascii", "replace") if isinstance(line, str) else line
        self.out += b"* " + data + b"\r\n"

    async def flush(self) -> None:
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            await self.conn.write(data)

    async def maybe_flush(self) -> None:
        if len(self.out) >= FLUSH_BYTES:
            await self.flush()

    async def tagged(self, tag: str, status: str, text: str, code: str = "") -> None:
        prefix = f"[{code}] " if code else ""
        self.out += f"{tag} {status} {prefix}{text}\r\n".encode("ascii", "replace")
        await self.flush()

    @property
    def condstore(self) -> bool:
        return self.condstore_on

    @condstore.setter
    def condstore(self, value: bool) -> None:
        # RFC 7162 §3.1: enabling CONDSTORE with a folder selected reports its HIGHESTMODSEQ
        if value and not self.condstore_on and self.selected is not None:
            self.untagged(f"OK [HIGHESTMODSEQ {self.selected.modseq}] modseq")
        self.condstore_on = self.condstore_on or value

    def flags_of(self, row: IndexEntry | MessageSummary) -> str:
        """FLAGS of a message for this session: \\Recent added, new keywords announced first
        with an untagged FLAGS (RFC 3501 §7.2.6)."""
        selected = self.selected
        if not row.keywords and (selected is None or row.uid not in selected.recent):
            return _system_flags_text(row.flags)
        words = row.keywords.split()
        if selected is None:
            return flags_text(row.flags, words)
        new = [w for w in words if w not in selected.keywords]
        if new:
            selected.keywords.update(new)
            self.announce_flags()
        text = flags_text(row.flags, words)
        if row.uid in selected.recent:
            text = "(\\Recent" + (" " if text != "()" else "") + text[1:]
        return text

    def announce_flags(self) -> None:
        selected = self.selected
        assert selected is not None
        names = " ".join([*Flag.NAMES, *sorted(selected.keywords)])
        self.untagged(f"FLAGS ({names})")
        if selected.readonly:
            self.untagged("OK [PERMANENTFLAGS ()] lecture seule")
        else:
            self.untagged(f"OK [PERMANENTFLAGS ({names} \\*)] drapeaux permanents")

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    def name_out(self, name: str) -> bytes:
        """A mailbox name for a response: UTF-8 once enabled (RFC 6855), else modified UTF-7."""
        from caducee.domain.mime_structure import istring

        if self.utf8:
            encoded = name.encode("utf-8")
            if all(0x20 <= b < 0x7F and b not in (0x22, 0x5C) for b in encoded):
                return b'"' + encoded + b'"'
            if b"\r" not in encoded and b"\n" not in encoded:
                return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        return istring(parser.encode_mutf7(name))

    # --- the command loop --------------------------------------------------------------------

    async def run(self) -> None:
        from caducee.protocols.imap.auth import capabilities

        caps = " ".join(capabilities(self))
        self.untagged(f"OK [CAPABILITY {caps}] {self.config.hostname} Caducee IMAP pret")
        await self.flush()
        async with contextlib.AsyncExitStack() as stack:
            while self.state is not State.LOGOUT:
                timeout = (
                    PREAUTH_TIMEOUT if self.state is State.NOT_AUTHENTICATED else AUTH_IDLE_TIMEOUT
                )
                try:
                    data = await self.next_command(timeout)
                    if data is not None:
                        await self.execute(data)
                    if self.cut is None and self.account_id is not None:
                        self.cut = await stack.enter_async_context(
                            mailbox_events(self.app).watch_cuts(self.account_id, ())
                        )
                    self.watch_open_mailboxes()
                    await self.end_if_cut()
                except ConnectionClosed as closed:
                    if str(closed) == "timeout":
                        self.untagged("BYE delai d'inactivite depasse, deconnexion")
                        await self.flush()
                    return

    # --- cuts (issue 19): the account or a mailbox disabled or deleted ----------------------

    def watch_open_mailboxes(self) -> None:
        """The mailboxes a cut of which ends the session: the login's, the selected one's."""
        if self.cut is None:
            return
        ids = {self.login_mailbox_id} if self.login_mailbox_id is not None else set()
        if self.selected is not None:
            ids.add(self.selected.of.mailbox.id)
        self.cut.mailbox_ids = ids

    async def end_if_cut(self) -> None:
        """After a cut naming this session: if its account or an open mailbox is indeed
        disabled or gone (the database says; the event is a hint), say BYE and end at once
        (RFC 9051 §7.1.5: the server is closing the connection)."""
        cut = self.cut
        if cut is None or not cut.fired.is_set():
            return
        cut.fired.clear()
        if await session_allowed(self.app, self.account_id, cut.mailbox_ids):
            return
        self.untagged(
            "BYE acces desactive ou supprime par l'administrateur du cabinet, deconnexion"
            " / access disabled or deleted by the practice's administrator"
        )
        await self.flush()
        self.state = State.LOGOUT
        raise ConnectionClosed("cut")

    async def next_command(self, timeout: float) -> bytes | None:
        """:meth:`read_command`, unless a cut ends the session while it waits."""
        return await read_unless_cut(self.read_command(timeout), self.cut, self.end_if_cut)

    async def read_command(self, timeout: float) -> bytes | None:
        """One whole command, its literals included; None if it was refused while reading."""
        buffer = bytearray()
        while True:
            try:
                line = await self.conn.readline(LINE_LIMIT, timeout)
            except LineTooLong:
                await self.bad_line(bytes(buffer), "ligne trop longue")
                return None
            buffer += line
            match = parser.LITERAL_AT_END.search(line)
            if match is None:
                return bytes(buffer)
            size, nonsync = int(match.group(2)), bool(match.group(3))
            limit = self.literal_limit(bytes(buffer))
            if size > limit or len(buffer) + size > limit + COMMAND_LIMIT:
                tag = parser.parse_tag(bytes(buffer)) or "*"
                if nonsync:  # the data is on its way: we cannot resynchronise, hang up
                    self.untagged("BYE litteral trop grand")
                    await self.flush()
                    raise ConnectionClosed("literal")
                code = "TOOBIG" if tag != "*" else ""
                await self.tagged(tag, "NO", "litteral trop grand", code)
                return None
            if not nonsync:
                await self.conn.write(b"+ pret pour le litteral\r\n")
            try:
                buffer += await asyncio.wait_for(self.conn.reader.readexactly(size), timeout)
            except (TimeoutError, asyncio.IncompleteReadError):
                raise ConnectionClosed("eof") from None

    def literal_limit(self, head: bytes) -> int:
        words = head.split(b" ", 3)
        if len(words) > 1 and words[1].upper() == b"APPEND":
            return self.config.max_message_bytes
        return SMALL_LITERAL

    async def bad_line(self, data: bytes, text: str) -> None:
        tag = parser.parse_tag(data) or "*"
        self.bad_commands += 1
        if self.bad_commands >= MAX_BAD_COMMANDS:
            self.untagged("BYE trop d'erreurs, au revoir")
            await self.flush()
            raise ConnectionClosed("bad")
        await self.tagged(tag, "BAD", text)

    async def execute(self, data: bytes) -> None:
        from caducee.protocols.imap.commands import HANDLERS

        try:
            command = parser.parse_command(data, utf8=self.utf8)
        except ParseError as error:
            await self.bad_line(data, str(error) or "erreur de syntaxe")
            return
        entry = HANDLERS.get(command.name)
        if entry is None:  # pragma: no cover - the parser knows every command
            await self.bad_line(data, "commande inconnue")
            return
        handler, states = entry
        if self.state not in states:
            await self.bad_line(data, "commande interdite dans cet etat")
            return
        self.bad_commands = 0  # only BAD answers in a row end the session
        try:
            await handler(self, command)
        except Respond as response:
            if response.status == "BAD":
                self.bad_commands += 1
            await self._after_refusal(command)
            await self.tagged(command.tag, response.status, response.text, response.code)
        except CaduceeError as error:
            refusal = error_response(error)
            await self._after_refusal(command)
            await self.tagged(command.tag, refusal.status, refusal.text, refusal.code)
        except (ConnectionClosed, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            raise
        except Exception:
            log.exception("imap command failed command=%s", command.name)
            self.out.clear()
            await self.tagged(command.tag, "NO", "erreur interne, reessayez", "SERVERBUG")

    async def ok(self, command: Command, text: str = "fait", code: str = "") -> None:
        """End a command successfully, reporting pending changes first."""
        await self.after_command(command)
        await self.tagged(command.tag, "OK", text, code)

    async def _after_refusal(self, command: Command) -> None:
        """The pending changes before a refusal, unless what refused the command (the database
        out of reach, say) also stops reading them: the session then stays, and the client
        learns the changes at a later command."""
        try:
            await self.after_command(command)
        except TemporaryFailure:
            log.info("imap changes not reported now command=%s", command.name)

    async def after_command(self, command: Command) -> None:
        if self.selected is not None and self.state is State.SELECTED:
            # RFC 3501 §7.4.1: no EXPUNGE while answering FETCH, STORE, SEARCH by number.
            allow = command.name not in ("FETCH", "STORE", "SEARCH")
            await self.sync(expunge_ok=allow)

    # --- the selected folder -----------------------------------------------------------------

    def fetch_line(self, seq: int, row: IndexEntry, *, uid: bool) -> str:
        items = [f"FLAGS {self.flags_of(row)}"]
        if uid or self.qresync:
            items.insert(0, f"UID {row.uid}")
        if self.condstore:
            items.append(f"MODSEQ ({row.modseq})")
        return f"{seq} FETCH (" + " ".join(items) + ")"

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    async def sync(self, *, expunge_ok: bool) -> None:
        """Report what changed in the selected folder since the client last heard."""
        selected = self.selected
        assert selected is not None
        changes = await mailstore.changes(self.app, selected.of.folder.id, selected.modseq)
        if changes.folder is None:
            self.untagged("BYE le dossier selectionne a ete supprime ou renomme")
            await self.flush()
            raise ConnectionClosed("folder gone")
        known_max = selected.uids[-1] if selected.uids else 0
        for uid in changes.expunged:
            if uid in selected.rows:
                selected.pending_expunge.add(uid)
        if expunge_ok and selected.pending_expunge:
            self.report_expunges(sorted(selected.pending_expunge))
        new_rows = [r for r in changes.changed if r.uid > known_max]
        changed = [r for r in changes.changed if r.uid <= known_max]
        if new_rows:
            for row in new_rows:
                selected.rows[row.uid] = row
            first = await mailstore.claim_recent(
                self.app,
                selected.of.folder.id,
                changes.folder.uidnext,
                claim=not selected.readonly,
            )
            selected.recent.update(r.uid for r in new_rows if r.uid >= first)
            self.untagged(f"{len(selected.uids)} EXISTS")
            if not self.rev2:
                self.untagged(f"{len(selected.recent)} RECENT")
        for row in changed:
            old = selected.rows.get(row.uid)
            if old is None or row.uid in selected.pending_expunge:
                continue
            if (old.flags, old.keywords) != (row.flags, row.keywords) or (
                self.condstore and old.modseq != row.modseq
            ):
                selected.rows[row.uid] = row
                self.untagged(self.fetch_line(selected.seq_of(row.uid), row, uid=True))
        selected.modseq = max(selected.modseq, changes.folder.highestmodseq)
        selected.uidnext = changes.folder.uidnext

    def report_expunges(self, uids: list[int]) -> None:
        """EXPUNGE responses (or VANISHED with QRESYNC, RFC 7162 §3.2.10) for these UIDs."""
        selected = self.selected
        assert selected is not None
        present = [uid for uid in uids if uid in selected.rows]
        if not present:
            return
        if self.qresync:
            self.untagged(f"VANISHED {format_set(present)}")
        for uid in sorted(present, reverse=True):
            seq = selected.seq_of(uid)
            if not self.qresync:
                self.untagged(f"{seq} EXPUNGE")
            del selected.rows[uid]
            selected.pending_expunge.discard(uid)
            selected.recent.discard(uid)

    def deselect(self) -> None:
        self.selected = None
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED
