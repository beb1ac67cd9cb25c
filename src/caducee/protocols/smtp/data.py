"""The DATA stream (RFC 5321 §4.1.1.4, §4.5.2) and the content checks done before storing.

Reading: the stream is cut out of the session's input buffer in chunks, up to the exact
end-of-data sequence CRLF "." CRLF; "\\n.\\n", "\\r.\\r" or "\\n.\\r\\n" do not end it (no SMTP
smuggling). A message over the size limit is read to its end and dropped (552 5.3.4 after
the dot, RFC 1870 §6.3): the connection stays usable and nothing partial is ever stored.

Checks, on the whole message once received (nothing is stored when one fails):

- bare LF or bare CR (RFC 5321 §2.3.8: lines end with CRLF only) → 550 5.6.2. We refuse rather
  than normalise: a bare line ending is the raw material of SMTP smuggling, and a message
  whose line ends were rewritten no longer verifies its DKIM signature anyway; every real
  client sends CRLF;
- a NUL octet → 550 5.6.0;
- more than :data:`~caducee.protocols.smtp.limits.MAX_HEADER_FIELDS` header fields → 552 5.3.4;
- a header line over 998 octets (RFC 5322 §2.1.1) → 550 5.6.0;
- 8-bit octets in the header without SMTPUTF8 (RFC 6531 §3.2, RFC 6532) → 550 5.6.7.

Body lines are not checked for length and MIME is not looked at: a broken MIME structure is not
a protocol error, such a message is stored as received.

A big message (:data:`OFF_LOOP_BYTES`) is joined, unstuffed and checked in a worker thread, a
slice of :data:`SLICE` bytes at a time: a bytes operation holds the interpreter lock for its
whole length (counting the line ends of 20 MB took 100-400 ms on a busy machine), a slice's for
a few ms, between which the event loop runs (issue 17); ``bytes.join`` copies mostly without it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from caducee.protocols.smtp import replies
from caducee.protocols.smtp.limits import HEADER_LINE_MAX, MAX_HEADER_FIELDS
from caducee.protocols.smtp.replies import Reply
from caducee.protocols.smtp.stream import SmtpStream

CRLF = b"\r\n"
#: Messages from this size on are unstuffed and checked off the event loop.
OFF_LOOP_BYTES = 1024 * 1024
#: Bytes per operation on a big message (the interpreter lock is released between them).
SLICE = 1024 * 1024
#: RFC 5321 §4.1.1.4: the end of the mail data.
END_OF_DATA = b"\r\n.\r\n"


@dataclass(frozen=True)
class ReceivedData:
    """What came between 354 and the final dot."""

    raw: bytes | None  # dot-unstuffed message; None when it exceeded the size limit
    received: int  # octets received on the wire (dot-stuffed), for the logs


def unstuff(stuffed: bytes) -> bytes:
    """RFC 5321 §4.5.2: drop the first "." of every line; ``stuffed`` starts with CRLF. A slice
    at a time, each with the two octets before it: a CRLF "." across two slices is found."""
    if len(stuffed) <= SLICE:
        return stuffed.replace(b"\r\n.", CRLF)[2:]
    pieces = []
    for start in range(0, len(stuffed), SLICE):
        before = min(start, 2)
        pieces.append(stuffed[start - before : start + SLICE].replace(b"\r\n.", CRLF)[before:])
    return b"".join(pieces)[2:]


def _joined_unstuffed(pieces: list[bytes]) -> bytes:
    """:func:`unstuff` of the pieces read (in a worker thread: ``bytes.join`` copies a big
    message without the interpreter lock)."""
    return unstuff(b"".join(pieces))


def _bare_line_end(raw: bytes) -> bool:
    """A LF or a CR not in a CRLF (RFC 5321 §2.3.8), counted a slice at a time."""
    crlf = lf = cr = 0
    for start in range(0, len(raw), SLICE):
        end = min(start + SLICE, len(raw))
        lf += raw.count(b"\n", start, end)
        cr += raw.count(b"\r", start, end)
        crlf += raw.count(CRLF, start, end + 1)  # one starting in this slice
    return lf != crlf or cr != crlf


async def read_data(stream: SmtpStream, max_bytes: int, timeout: float) -> ReceivedData:
    """Consume the mail data from ``stream`` up to and including the end-of-data sequence."""
    buffer = stream.buffer
    # The CRLF that ended the DATA line begins the first line: a message that is just "."
    # then matches END_OF_DATA at 0 like every later dot line.
    buffer[0:0] = CRLF
    pieces: list[bytes] = []
    received = 0
    keep = True

    def take(count: int) -> None:
        nonlocal received, keep
        received += count
        if keep and received - len(CRLF) > max_bytes:
            keep = False
            pieces.clear()  # too large: keep reading to the end, store nothing
        if keep:
            with memoryview(buffer) as view:  # one copy, released before the buffer shrinks
                pieces.append(bytes(view[:count]))
        del buffer[:count]

    while True:
        end = buffer.find(END_OF_DATA)
        if end >= 0:
            take(end + len(CRLF))  # the message ends with the CRLF of its last line
            del buffer[: len(END_OF_DATA) - len(CRLF)]  # ".\r\n"
            break
        # A terminator not found yet can only start in the last 4 octets: keep them.
        if len(buffer) > len(END_OF_DATA) - 1:
            take(len(buffer) - (len(END_OF_DATA) - 1))
        await stream.fill(timeout)
    size = received - len(CRLF)
    if not keep:
        return ReceivedData(None, size)
    if received >= OFF_LOOP_BYTES:  # joining 20 MB costs the loop 10-60 ms of copies
        return ReceivedData(await asyncio.to_thread(_joined_unstuffed, pieces), size)
    return ReceivedData(unstuff(b"".join(pieces)), size)


async def read_chunk(stream: SmtpStream, size: int, *, keep: bool, timeout: float) -> bytes | None:
    """RFC 3030 §2: exactly ``size`` octets following a BDAT line, taken as they are (no dot
    stuffing). With ``keep`` false (the message would exceed its limit) they are read and
    dropped, so that a huge announced size never costs memory; None is then returned."""
    buffer = stream.buffer
    pieces: list[bytes] = []
    left = size
    while True:
        count = min(left, len(buffer))
        if count:
            if keep:
                pieces.append(bytes(buffer[:count]))
            del buffer[:count]
            left -= count
        if not left:
            return b"".join(pieces) if keep else None
        await stream.fill(timeout)


def header_section(raw: bytes) -> bytes:
    """The header lines of ``raw`` (without the empty line that ends them)."""
    if raw.startswith(CRLF):
        return b""
    end = raw.find(b"\r\n\r\n")
    return raw[:end] if end >= 0 else raw[: -len(CRLF)]


async def checked(
    raw: bytes, *, smtputf8: bool, max_header_fields: int = MAX_HEADER_FIELDS
) -> Reply | None:
    """:func:`check_content`, in a worker thread for a big message."""
    if len(raw) >= OFF_LOOP_BYTES:
        return await asyncio.to_thread(
            check_content, raw, smtputf8=smtputf8, max_header_fields=max_header_fields
        )
    return check_content(raw, smtputf8=smtputf8, max_header_fields=max_header_fields)


def check_content(
    raw: bytes, *, smtputf8: bool, max_header_fields: int = MAX_HEADER_FIELDS
) -> Reply | None:
    """The refusal a received message deserves, or None if it may be stored as is."""
    if not raw:
        return replies.EMPTY_MESSAGE
    if _bare_line_end(raw):
        return replies.BARE_LINE_END
    if b"\x00" in raw:
        return replies.NUL_BYTE
    header = header_section(raw)
    lines = header.split(CRLF) if header else []
    fields = sum(1 for line in lines if line[:1] not in (b" ", b"\t"))
    if fields > max_header_fields:
        return replies.TOO_MANY_HEADERS
    if any(len(line) > HEADER_LINE_MAX for line in lines):
        return replies.HEADER_LINE_TOO_LONG
    if not smtputf8 and not header.isascii():
        return replies.EIGHT_BIT_HEADERS
    return None
