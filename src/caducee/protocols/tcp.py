"""The TCP plumbing every mail door shares: accept loop, implicit TLS or STARTTLS, per-client
limits, bounded line reads, graceful stop.

A protocol (POP3, and the others as they move onto it) supplies a ``session`` coroutine taking a
:class:`Connection` and a ``refusal`` line sent when a client is over its limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from caducee.app import App
from caducee.config import Settings
from caducee.listeners import ListenAddress, bind_tcp, bound_address
from caducee.services import metrics, rate_limits
from caducee.services.rate_limits import RateLimiter

log = logging.getLogger(__name__)

TLS_HANDSHAKE_TIMEOUT = 20.0


class LineTooLong(Exception):
    """The peer sent a line longer than allowed (the rest of the line has been discarded)."""


class ConnectionClosed(Exception):
    """The peer closed the connection (or it timed out)."""


@dataclass
class ClientLimits:
    """Per-client-address limits of one listener: concurrent connections, and the connection
    rate counted by the node's one rate limiter (``services.rate_limits``)."""

    max_connections_per_ip: int = 20
    connections_per_minute: int = 120  # token bucket refilled continuously
    rate: RateLimiter | None = field(default=None, compare=False, repr=False)
    _active: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.rate is None:
            self.rate = RateLimiter(self.connections_per_minute)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientLimits:
        return cls(settings.connections_per_address, settings.connections_per_minute)

    def held_by(self, app: App, listener: str) -> ClientLimits:
        """These limits with their connection rate counted by ``app``'s limiter for
        ``listener`` (the node's counters live in the app, not in a module)."""
        self.rate = rate_limits.limiter(app, f"{listener}.connections", self.connections_per_minute)
        return self

    async def admit(self, ip: str, now: float | None = None) -> bool:
        """Count one more connection from ``ip``; False if over its limits. The concurrent
        connections are counted by this process (each worker process of a node admits
        ``max_connections_per_ip``), the connection rate by the node's shared limiter."""
        if self._active.get(ip, 0) >= self.max_connections_per_ip:
            return False
        self._active[ip] = self._active.get(ip, 0) + 1  # held while the rate is asked
        assert self.rate is not None
        try:
            allowed = await self.rate.allow(ip, now)
        except BaseException:
            self.release(ip)
            raise
        if not allowed:
            self.release(ip)
        return allowed

    def release(self, ip: str) -> None:
        left = self._active.get(ip, 1) - 1
        if left > 0:
            self._active[ip] = left
        else:
            self._active.pop(ip, None)


class Connection:
    """One client connection: bounded line reads, writes, STARTTLS upgrade."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        listener: str,
        *,
        tls: bool,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.listener = listener
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.ip = str(peer[0])
        self.tls = tls

    async def readline(self, limit: int, timeout: float) -> bytes:
        """One line including its end; LineTooLong past ``limit`` bytes (line discarded)."""
        try:
            line = await asyncio.wait_for(self._readline(limit), timeout)
        except TimeoutError:
            raise ConnectionClosed("timeout") from None
        if not line:
            raise ConnectionClosed("eof")
        return line

    async def _readline(self, limit: int) -> bytes:
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as overrun:
            # The stream buffer limit is our hard cap: discard until the end of the line.
            await self.reader.readexactly(overrun.consumed)
            while True:
                try:
                    await self.reader.readuntil(b"\n")
                    break
                except asyncio.LimitOverrunError as more:
                    await self.reader.readexactly(more.consumed)
            raise LineTooLong from None
        except asyncio.IncompleteReadError as partial:
            return partial.partial

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def pending_input(self) -> bool:
        """Whether the client already sent more (pipelining; refused before STARTTLS)."""
        # asyncio exposes no public accessor for what is already buffered
        return bool(getattr(self.reader, "_buffer", b""))

    async def start_tls(self, context: ssl.SSLContext) -> None:
        await self.writer.start_tls(context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        self.tls = True

    def tls_description(self) -> str:
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return ""
        cipher = ssl_object.cipher()
        return f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()

    def peer_certificate(self) -> bytes | None:
        """The DER client certificate the peer presented under TLS, if any."""
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        der: bytes | None = ssl_object.getpeercert(binary_form=True)
        return der

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)


Session = Callable[[Connection], Awaitable[None]]


class StreamListener:
    """A :class:`caducee.listeners.Listener` serving one line-based protocol over TCP."""

    def __init__(
        self,
        name: str,
        address: ListenAddress,
        session: Session,
        *,
        tls_context: ssl.SSLContext | None,
        implicit_tls: bool,
        refusal: bytes,
        limits: ClientLimits | None = None,
        line_limit: int = 64 * 1024,
    ) -> None:
        self.name = name
        self.address = address
        self.session = session
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.refusal = refusal
        self.limits = limits or ClientLimits()
        self.line_limit = line_limit
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()

    async def start(self) -> ListenAddress:
        sock = bind_tcp(self.name, self.address)
        self._server = await asyncio.start_server(
            self._accept,
            sock=sock,
            limit=self.line_limit,
            ssl=self.tls_context if self.implicit_tls else None,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self.implicit_tls else None,
        )
        return bound_address(sock)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(reader, writer, self.name, tls=self.implicit_tls)
        if not await self.limits.admit(connection.ip):
            with contextlib.suppress(Exception):
                await connection.write(self.refusal)
            await connection.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        # Every IMAP, POP3 and SMTP session passes here: the one place they are counted.
        metrics.SESSIONS.labels(self.name).inc()
        open_sessions = metrics.SESSIONS_OPEN.labels(self.name)
        open_sessions.inc()
        try:
            await self.session(connection)
        except (ConnectionClosed, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("session error listener=%s", self.name)
        finally:
            open_sessions.dec()
            self._sessions.discard(task)
            self.limits.release(connection.ip)
            await connection.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._closed.set()
