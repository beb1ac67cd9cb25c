"""Buffered input and output of one SMTP session.

Input is read in large chunks into our own buffer, so command lines and the DATA stream are cut
out of it without a system call per line, and the session knows exactly what the client has
already sent (PIPELINING, RFC 2920; the STARTTLS injection check, RFC 3207 §4).

Replies are queued and written when the session is about to wait for input: a pipelined group
of commands gets its replies in one write, in order (RFC 2920 §3.2), and a lone command gets
its reply at once.
"""

from __future__ import annotations

import asyncio

from caducee.protocols.smtp.replies import Reply
from caducee.protocols.tcp import Connection, ConnectionClosed

#: How much one read takes from the socket at most.
CHUNK = 64 * 1024


class SessionTimeout(Exception):
    """The client sent nothing (or read nothing) for the allowed time."""


class LineTooLong(Exception):
    """A line exceeded the limit; it has been read and discarded entirely."""


class SmtpStream:
    def __init__(self, conn: Connection, write_timeout: float) -> None:
        self.conn = conn
        self.write_timeout = write_timeout
        #: Bytes received and not consumed yet (data.py cuts the DATA stream out of it).
        self.buffer = bytearray()
        self._out = bytearray()

    # --- output ------------------------------------------------------------------------------

    def send(self, reply: Reply) -> None:
        self._out += reply.render()

    def write_now(self) -> None:
        """Hand pending replies to the transport without yielding to the event loop.

        Before STARTTLS this matters: had the loop run between the 220 and the TLS upgrade,
        it could have read the client's ClientHello into the clear-text buffer.
        """
        if self._out:
            self.conn.writer.write(bytes(self._out))
            self._out.clear()

    async def flush(self) -> None:
        if not self._out:
            return
        self.write_now()
        writer = self.conn.writer
        if writer.transport.get_write_buffer_size() > 0:  # the client is slow to read
            try:
                async with asyncio.timeout(self.write_timeout):
                    await writer.drain()
            except TimeoutError:
                raise SessionTimeout from None

    # --- input -------------------------------------------------------------------------------

    def has_input(self) -> bool:
        """Whether the client already sent bytes we have not consumed."""
        return bool(self.buffer) or self.conn.pending_input()

    async def fill(self, timeout: float) -> None:
        """Flush pending replies, then wait (up to ``timeout``) for more input."""
        await self.flush()
        try:
            async with asyncio.timeout(timeout):
                chunk = await self.conn.reader.read(CHUNK)
        except TimeoutError:
            raise SessionTimeout from None
        if not chunk:
            raise ConnectionClosed("eof")
        self.buffer += chunk

    async def read_line(self, limit: int, timeout: float) -> bytes:
        """The next line without its CRLF (a bare LF ends a command line too).

        Raises :class:`LineTooLong` when the line, CRLF included, is longer than ``limit``: the
        whole line is consumed first, so the next line is read normally.
        """
        scanned = 0
        while True:
            end = self.buffer.find(b"\n", scanned)
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                if end + 1 > limit:
                    raise LineTooLong
                return line[:-1] if line.endswith(b"\r") else line
            if len(self.buffer) > limit:
                await self._discard_line(timeout)
                raise LineTooLong
            scanned = len(self.buffer)
            await self.fill(timeout)

    async def _discard_line(self, timeout: float) -> None:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                del self.buffer[: end + 1]
                return
            self.buffer.clear()
            await self.fill(timeout)
