"""A real DNS server on 127.0.0.1 (UDP and TCP, same port) answering from an in-memory zone.

Tests point Caducée at it with ``settings.dns_resolver = local_dns.resolver_spec``::

    def test_mx(local_dns: LocalDNS, settings: Settings) -> None:
        local_dns.add("example.org", "MX", "10 mx.example.org.")
        local_dns.add("mx.example.org", "A", "192.0.2.25")
        local_dns.add("example.org", "TXT", "v=spf1 mx -all")   # quoted and split for you
        settings.dns_resolver = local_dns.resolver_spec

Names are absolute (a trailing dot is optional). Answers are authoritative, follow CNAMEs inside
the zone, return NXDOMAIN or NODATA with an SOA of TTL 0 (so resolvers do not cache the
negative answer), and set TC over UDP when the answer does not fit (the client retries on
TCP). ``fail(name)`` answers SERVFAIL (or another rcode) for a name, ``silent = True`` drops
every query (timeouts), ``queries`` records what was asked. The server runs in its own threads,
so code that blocks (dkimpy's ``dnsfunc``) and asyncio code can both use it.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import pytest

IN = dns.rdataclass.IN
_SOA = dns.rdata.from_text(IN, dns.rdatatype.SOA, "ns.local. hostmaster.local. 1 0 0 0 0")


def _name(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".").lower() + ".")


class LocalDNS:
    """An authoritative DNS server for tests. ``start()`` returns its port."""

    def __init__(self, host: str = "127.0.0.1", ttl: int = 0) -> None:
        self.host = host
        self.ttl = ttl
        self.port = 0
        #: When true, queries are read and dropped (the client times out).
        self.silent = False
        #: (name, type) of every question received, in order.
        self.queries: list[tuple[str, str]] = []
        self._zone: dict[dns.name.Name, dict[dns.rdatatype.RdataType, list[dns.rdata.Rdata]]]
        self._zone = {}
        self._failures: dict[dns.name.Name, dns.rcode.Rcode] = {}
        self._lock = threading.Lock()
        self._udp: _UDPServer | None = None
        self._tcp: _TCPServer | None = None
        self._threads: list[threading.Thread] = []

    # ----- zone ------------------------------------------------------------------------------

    def add(self, name: str, rdtype: str, value: str) -> None:
        """Add one record, ``value`` in zone-file syntax (``"10 mx.example.org."``).

        For TXT, a value not starting with ``"`` is taken as the raw text: it is split into
        255-byte character-strings for you (``add(n, "TXT", "v=spf1 -all")``).
        """
        kind = dns.rdatatype.from_text(rdtype.upper())
        rdata: dns.rdata.Rdata
        if kind == dns.rdatatype.TXT and not value.startswith('"'):
            raw = value.encode()
            chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
            rdata = dns.rdtypes.ANY.TXT.TXT(IN, kind, chunks)
        else:
            rdata = dns.rdata.from_text(IN, kind, value, origin=dns.name.root, relativize=False)
        with self._lock:
            self._zone.setdefault(_name(name), {}).setdefault(kind, []).append(rdata)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Remove a name's records of one type, or all of them."""
        with self._lock:
            node = self._zone.get(_name(name), {})
            if rdtype is None:
                node.clear()
            else:
                node.pop(dns.rdatatype.from_text(rdtype.upper()), None)

    def clear(self) -> None:
        with self._lock:
            self._zone.clear()
            self._failures.clear()
            self.queries.clear()

    def fail(self, name: str, rcode: str = "SERVFAIL") -> None:
        """Answer every question about ``name`` with ``rcode`` (SERVFAIL, REFUSED, ...)."""
        with self._lock:
            self._failures[_name(name)] = dns.rcode.from_text(rcode)

    @property
    def resolver_spec(self) -> str:
        """The value for ``Settings.dns_resolver``."""
        return f"{self.host}:{self.port}"

    def txt(self, name: str | bytes, timeout: float = 5) -> bytes | None:
        """A blocking TXT lookup in the zone, shaped as dkimpy's ``dnsfunc(name, timeout=5)``
        (no network: for checking code that takes such a function)."""
        text = name.decode() if isinstance(name, bytes) else name
        with self._lock:
            records = self._zone.get(_name(text), {})
            txts = records.get(dns.rdatatype.TXT, [])
        if not txts:
            return None
        first = txts[0]
        assert isinstance(first, dns.rdtypes.ANY.TXT.TXT)
        return b"".join(first.strings)

    # ----- answering -------------------------------------------------------------------------

    def _exists(self, name: dns.name.Name) -> bool:
        """A name with records, or an empty non-terminal (RFC 8020: not NXDOMAIN)."""
        return any(
            (n == name and node) or (n != name and n.is_subdomain(name) and node)
            for n, node in self._zone.items()
        )

    def _negative(self, response: dns.message.Message, rcode: dns.rcode.Rcode) -> None:
        response.set_rcode(rcode)
        response.authority.append(dns.rrset.from_rdata(dns.name.root, self.ttl, _SOA))

    def answer(self, wire: bytes, max_size: int = 65535) -> bytes | None:
        """The response to one query in wire format (``None``: drop it)."""
        if self.silent:
            return None
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        with self._lock:
            self.queries.append((qname.to_text(omit_final_dot=True), dns.rdatatype.to_text(qtype)))
            failure = self._failures.get(qname)
            if failure is not None:
                response.set_rcode(failure)
                return response.to_wire()
            name = qname
            for _ in range(8):  # CNAME chain inside the zone
                node = self._zone.get(name) or {}
                if qtype in node:
                    response.answer.append(dns.rrset.from_rdata_list(name, self.ttl, node[qtype]))
                    break
                cname = node.get(dns.rdatatype.CNAME)
                if cname and qtype != dns.rdatatype.CNAME:
                    response.answer.append(dns.rrset.from_rdata_list(name, self.ttl, cname))
                    name = cname[0].target  # type: ignore[attr-defined]
                    continue
                if not self._exists(name):
                    self._negative(response, dns.rcode.NXDOMAIN)
                else:
                    self._negative(response, dns.rcode.NOERROR)
                break
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    # ----- server ----------------------------------------------------------------------------

    def start(self) -> int:
        """Listen on UDP and TCP (same port) in background threads; return the port."""
        owner = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                try:
                    query = dns.message.from_wire(data)
                    size = max(512, query.payload) if query.edns >= 0 else 512
                except dns.exception.DNSException:
                    size = 512
                reply = owner.answer(data, size)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(10)
                try:
                    while True:
                        head = _recv_exactly(conn, 2)
                        if head is None:
                            return
                        data = _recv_exactly(conn, struct.unpack("!H", head)[0])
                        if data is None:
                            return
                        reply = owner.answer(data)
                        if reply is None:
                            continue
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        for _ in range(50):
            udp = _UDPServer((self.host, 0), UDPHandler)
            port = int(udp.server_address[1])
            try:
                tcp = _TCPServer((self.host, port), TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover - the machine is out of ports
            raise RuntimeError("no free port for the local DNS server")
        self._udp, self._tcp, self.port = udp, tcp, port
        for server in (udp, tcp):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return port

    def stop(self) -> None:
        """Stop listening (later queries are refused by the kernel: a "server down")."""
        servers = [s for s in (self._udp, self._tcp) if s is not None]
        stoppers = [threading.Thread(target=s.shutdown) for s in servers]  # in parallel
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=5)
        for server in servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._udp = self._tcp = None
        self._threads.clear()

    def __enter__(self) -> LocalDNS:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _UDPServer(socketserver.ThreadingUDPServer):
    daemon_threads = True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def local_dns() -> Iterator[LocalDNS]:
    """A running :class:`LocalDNS`; import it in a test module (or conftest) to use it."""
    server = LocalDNS()
    server.start()
    try:
        yield server
    finally:
        server.stop()
