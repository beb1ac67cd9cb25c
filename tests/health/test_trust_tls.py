"""Operators' TLS in the trust space: the inbound certificate check (chain, dates, CRL, DN
listed for the domain, TLS version and suite), the last valid CRL kept, and real handshakes."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from caducee.config import Settings
from caducee.health.trust_tls import (
    accept_client_certificates,
    check_peer,
    load_trust_store,
    operator_client_context,
)
from caducee.health.whitelist import canonical_dn
from caducee.tls import create_dev_ca, server_ssl_context
from tests.health.pki import Issued, TestPKI

DOMAIN = "hopital-b.mssante.fr"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def certs(pki: TestPKI) -> dict[str, Issued]:
    now = datetime.now(UTC)
    issued = {
        "b": pki.issue("b", "mx.operateur-b.fr", "Opérateur B"),
        "other": pki.issue("other", "mx.operateur-c.fr", "Opérateur C"),
        "expired": pki.issue(
            "expired",
            "mx.operateur-b.fr",
            "Opérateur B",
            not_before=now - timedelta(days=400),
            not_after=now - timedelta(days=1),
        ),
        "revoked": pki.issue("revoked", "mx.operateur-b.fr", "Opérateur B"),
    }
    foreign = TestPKI(pki.directory / "foreign", name="AC Inconnue")
    issued["foreign"] = foreign.issue("foreign", "mx.operateur-b.fr", "Opérateur B")
    pki.revoke(issued["revoked"])
    return issued


def _settings(tmp_path: Path, pki: TestPKI, crl_dir: Path | None = None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        trust_ca_file=str(pki.ca_path),
        trust_crl_dir=str(crl_dir or ""),
    )


def _crl_dir(tmp_path: Path, pki: TestPKI) -> Path:
    directory = tmp_path / "crl"
    directory.mkdir(exist_ok=True)
    (directory / "ac-test.crl").write_bytes(pki.crl())
    return directory


def _der(issued: Issued) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return issued.cert.public_bytes(serialization.Encoding.DER)


def test_inbound_rules(tmp_path: Path, pki: TestPKI, certs: dict[str, Issued]) -> None:
    store = load_trust_store(_settings(tmp_path, pki, _crl_dir(tmp_path, pki)))
    allowed = frozenset({canonical_dn(certs["b"].dn)})

    def reason(name: str | None, version: str | None = "TLSv1.3", cipher: str = "x") -> str:
        peer = _der(certs[name]) if name else None
        refusal = check_peer(store, DOMAIN, allowed, peer, version, cipher)
        return "ok" if refusal is None else refusal.reason

    assert reason("b") == "ok"
    assert reason("b", "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384") == "ok"
    assert reason("b", "TLSv1.2", "AES256-SHA") == "weak-tls"
    assert reason("b", "TLSv1.1", "ECDHE-RSA-AES256-SHA") == "weak-tls"
    assert reason("b", None) == "plaintext"
    assert reason(None) == "no-certificate"
    assert reason("other") == "dn-mismatch"
    assert reason("expired") == "expired"
    assert reason("revoked") == "revoked"
    assert reason("foreign") == "untrusted-issuer"
    refusal = check_peer(store, DOMAIN, allowed, _der(certs["revoked"]), "TLSv1.3", "x")
    assert refusal is not None and refusal.status == "5.7.1" and "révoqué" in refusal.fr


def test_last_valid_crl_is_kept(tmp_path: Path, pki: TestPKI, certs: dict[str, Issued]) -> None:
    crl_dir = _crl_dir(tmp_path, pki)
    settings = _settings(tmp_path, pki, crl_dir)
    assert load_trust_store(settings).crls
    # The published CRL is replaced by garbage, then by one signed by another CA.
    (crl_dir / "ac-test.crl").write_bytes(
        b"-----BEGIN X509 CRL-----\nabc\n-----END X509 CRL-----\n"
    )
    foreign = TestPKI(tmp_path / "x509-foreign", name=pki.name)  # same name, other key
    (crl_dir / "forged.crl").write_bytes(foreign.crl())
    store = load_trust_store(settings)
    refusal = check_peer(
        store,
        DOMAIN,
        frozenset({canonical_dn(certs["b"].dn)}),
        _der(certs["revoked"]),
        "TLSv1.3",
        "x",
    )
    assert refusal is not None and refusal.reason == "revoked"


async def _handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> tuple[bytes | None, str | None, str | None] | None:
    """What the server saw of the client (certificate, TLS version, suite), or None when the
    server refused the handshake (with TLS 1.3 the client learns it only on its next read)."""
    seen: list[tuple[bytes | None, str | None, str | None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        seen.append((tls.getpeercert(binary_form=True), tls.version(), tls.cipher()[0]))
        writer.write(b"220\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
        )
        try:
            greeting = await asyncio.wait_for(reader.read(10), 10)
        except (ssl.SSLError, ConnectionError):
            greeting = b""
        writer.close()
        if greeting != b"220\r\n":
            return None
        return seen[0]
    finally:
        server.close()
        await server.wait_closed()


def _server(tmp_path: Path, pki: TestPKI) -> tuple[Settings, ssl.SSLContext]:
    settings = _settings(tmp_path, pki)
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "tls").mkdir(mode=0o700)
    create_dev_ca(settings.tls_dir, "localhost")
    context = server_ssl_context(settings)
    accept_client_certificates(context, load_trust_store(settings))
    return settings, context


def _client(pki: TestPKI, issued: Issued | None, server_ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server_ca))
    if issued is not None:
        context.load_cert_chain(issued.cert_path, issued.key_path)
    return context


async def test_handshake_lets_an_expired_operator_certificate_through_for_a_clear_refusal(
    tmp_path: Path, pki: TestPKI, certs: dict[str, Issued]
) -> None:
    settings, server_context = _server(tmp_path, pki)
    server_ca = settings.tls_dir / "ca.crt"
    seen = await _handshake(server_context, _client(pki, certs["expired"], server_ca))
    assert seen is not None and seen[0] == _der(certs["expired"])
    seen = await _handshake(server_context, _client(pki, None, server_ca))
    assert seen is not None and seen[0] is None  # senders without a certificate still connect
    # A certificate from outside the trust store (and the system's CAs) fails the handshake.
    assert await _handshake(server_context, _client(pki, certs["foreign"], server_ca)) is None


async def test_outbound_context_presents_our_certificate_and_verifies_the_trust_store(
    tmp_path: Path, pki: TestPKI, certs: dict[str, Issued]
) -> None:
    # The remote operator B: its server certificate from the trust-store CA, asking for ours.
    remote = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    remote.load_cert_chain(certs["b"].cert_path, certs["b"].key_path)
    remote.verify_mode = ssl.CERT_REQUIRED
    remote.load_verify_locations(cafile=str(pki.ca_path))
    ours = pki.issue("ours", "mx.operateur-a.fr", "Opérateur A")
    settings = dataclasses.replace(
        _settings(tmp_path, pki),
        trust_client_cert=str(ours.cert_path),
        trust_client_key=str(ours.key_path),
    )
    context = operator_client_context(settings, load_trust_store(settings))
    seen = await _handshake(remote, context)
    assert seen is not None
    peer, version, cipher = seen
    assert peer == _der(ours)
    assert version == "TLSv1.3" or cipher in (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
    )
    # A server whose certificate is not from the trust store is refused.
    stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    stranger.load_cert_chain(certs["foreign"].cert_path, certs["foreign"].key_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(stranger, context)
