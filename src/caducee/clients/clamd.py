"""ClamAV daemon client: ``INSTREAM`` over clamd's socket (clamd(8), "COMMANDS").

One connection per scan, on a Unix socket (``unix:/run/clamav/clamd.ctl``) or TCP
(``tcp:127.0.0.1:3310``). The command is sent in its NUL-terminated form (``zINSTREAM\\0``);
the data follows in chunks, each prefixed by its length as 4 bytes in network order, then a
zero-length chunk; clamd answers one NUL-terminated line::

    stream: OK
    stream: <signature> FOUND
    <reason> ERROR              (e.g. "INSTREAM size limit exceeded")

The whole message is sent as it is: clamd decodes MIME, base64, archives and nested messages
itself. The client holds no rule of ours: :mod:`caducee.services.antivirus` decides what a
verdict means.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass

#: Bytes per INSTREAM chunk (clamd reads each into memory; its StreamMaxLength caps the sum).
CHUNK_BYTES = 256 * 1024
MAX_REPLY_BYTES = 4096


@dataclass(frozen=True)
class ScanResult:
    """``clean``, ``infected`` (with the signature's name) or ``error`` (with why)."""

    verdict: str
    detail: str = ""

    @property
    def infected(self) -> bool:
        return self.verdict == "infected"


class ClamdUnavailable(Exception):
    """clamd could not be reached or did not answer in time."""


def parse_address(value: str) -> tuple[str, str | tuple[str, int]]:
    """``unix:/path`` or ``tcp:host:port`` (a bare absolute path is a Unix socket)."""
    if value.startswith("/"):
        return "unix", value
    kind, _, rest = value.partition(":")
    if kind == "unix" and rest.startswith("/"):
        return "unix", rest
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return "tcp", (host.strip("[]"), int(port))
    raise ValueError(f"clamd address: unix:/path or tcp:host:port, not {value!r}")


async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, where = parse_address(address)
    if kind == "unix":
        assert isinstance(where, str)
        return await asyncio.open_unix_connection(where)
    assert isinstance(where, tuple)
    return await asyncio.open_connection(where[0], where[1])


def parse_reply(line: bytes) -> ScanResult:
    text = line.rstrip(b"\0\r\n").decode("utf-8", "replace").strip()
    if text.endswith(" FOUND"):
        signature = text.removesuffix(" FOUND").partition(": ")[2] or text.removesuffix(" FOUND")
        return ScanResult("infected", signature.strip()[:200])
    if text.endswith(": OK") or text == "OK":
        return ScanResult("clean")
    return ScanResult("error", text.removesuffix(" ERROR")[:200] or "empty reply")


async def scan(address: str, data: bytes, timeout: float) -> ScanResult:
    """Scan ``data`` with the clamd at ``address``; :class:`ClamdUnavailable` when it cannot
    be reached or does not answer within ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(_scan(address, data), timeout)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise ClamdUnavailable(type(exc).__name__) from None


async def _scan(address: str, data: bytes) -> ScanResult:
    reader, writer = await _open(address)
    try:
        writer.write(b"zINSTREAM\0")
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_BYTES):
            chunk = view[start : start + CHUNK_BYTES]
            writer.write(struct.pack(">I", len(chunk)))
            writer.write(chunk)
            await writer.drain()  # clamd may stop reading (size limit): its reply says why
        writer.write(struct.pack(">I", 0))
        await writer.drain()
        reply = await reader.readuntil(b"\0")
        return parse_reply(reply[:MAX_REPLY_BYTES])
    except (ConnectionResetError, BrokenPipeError):
        # clamd closes the stream past its StreamMaxLength, after saying so
        rest = await reader.read(MAX_REPLY_BYTES)
        if rest:
            return parse_reply(rest)
        raise
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def ping(address: str, timeout: float = 5.0) -> bool:
    """Whether clamd answers ``PONG`` (``caducee doctor``, readiness)."""

    async def exchange() -> bytes:
        reader, writer = await _open(address)
        try:
            writer.write(b"zPING\0")
            await writer.drain()
            return await reader.readuntil(b"\0")
        finally:
            writer.close()

    try:
        return (await asyncio.wait_for(exchange(), timeout)).rstrip(b"\0") == b"PONG"
    except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return False
