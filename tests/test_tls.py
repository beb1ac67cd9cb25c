"""The development CA, the server TLS context and certificate expiry."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from caducee.config import Settings
from caducee.errors import AlreadyExists, ConfigurationError
from caducee.tls import certificate_not_after, create_dev_ca, server_ssl_context

HOST = "mail.test.example"
FILES = ("ca.key", "ca.crt", "server.key", "server.crt")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", hostname=HOST)
    create_dev_ca(settings.tls_dir, HOST)
    return settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_files_and_modes(settings: Settings) -> None:
    tls = settings.tls_dir
    assert sorted(p.name for p in tls.iterdir()) == sorted(FILES)
    assert mode(tls) == 0o700
    assert mode(tls / "ca.key") == 0o600
    assert mode(tls / "server.key") == 0o600


def test_ca_certificate(settings: Settings) -> None:
    (ca,) = load_chain(settings.tls_dir / "ca.crt")
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == f"Caducée — AC de développement ({HOST})"
    assert ca.issuer == ca.subject
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3650) <= lifetime <= timedelta(days=3651)


def test_server_certificate_chain(settings: Settings) -> None:
    chain = load_chain(settings.tls_dir / "server.crt")
    (ca,) = load_chain(settings.tls_dir / "ca.crt")
    assert len(chain) == 2
    leaf, second = chain
    assert second == ca  # the leaf, then the CA
    assert leaf.issuer == ca.subject
    leaf.verify_directly_issued_by(ca)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST, "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    # Apple's limit counts from notBefore: the hour of back-dating is within the 825 days.
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == timedelta(days=825)
    assert datetime.now(UTC) - leaf.not_valid_before_utc >= timedelta(minutes=59)
    assert leaf.not_valid_before_utc <= datetime.now(UTC) <= leaf.not_valid_after_utc


def test_certificate_not_after(settings: Settings) -> None:
    leaf = load_chain(settings.tls_dir / "server.crt")[0]
    not_after = certificate_not_after(settings.tls_dir / "server.crt")
    assert not_after == leaf.not_valid_after_utc
    assert not_after.tzinfo is not None
    assert timedelta(days=824) < not_after - datetime.now(UTC) < timedelta(days=826)
    with pytest.raises(ConfigurationError, match="introuvable"):
        certificate_not_after(settings.tls_dir / "absent.crt")


def test_refuses_to_overwrite(settings: Settings) -> None:
    before = {name: (settings.tls_dir / name).read_bytes() for name in FILES}
    with pytest.raises(AlreadyExists) as info:
        create_dev_ca(settings.tls_dir, HOST)
    assert "existent déjà" in info.value.fr and "already exist" in info.value.en
    assert {name: (settings.tls_dir / name).read_bytes() for name in FILES} == before


def test_refuses_when_any_file_exists(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "server.key").write_text("mine")
    with pytest.raises(AlreadyExists):
        create_dev_ca(tls, HOST)
    assert sorted(p.name for p in tls.iterdir()) == ["server.key"]
    assert (tls / "server.key").read_text() == "mine"


def test_context_requires_tls_12(settings: Settings) -> None:
    context = server_ssl_context(settings)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_missing_files_give_french_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, hostname=HOST)
    with pytest.raises(ConfigurationError) as info:
        server_ssl_context(settings)
    assert "Certificat TLS introuvable" in info.value.fr
    assert "server.crt" in info.value.fr and "caducee init" in info.value.fr
    assert "TLS certificate not found" in info.value.en


def test_mismatched_key_gives_french_error(tmp_path: Path, settings: Settings) -> None:
    other = tmp_path / "other"
    create_dev_ca(other, HOST)
    (settings.tls_dir / "server.key").unlink()
    (settings.tls_dir / "server.key").write_bytes((other / "server.key").read_bytes())
    with pytest.raises(ConfigurationError, match="inutilisable"):
        server_ssl_context(settings)


async def handshake(
    settings: Settings, client: ssl.SSLContext, server_hostname: str
) -> tuple[str | None, bytes]:
    """Serve one TLS connection with ``server_ssl_context`` on loopback; return (version, echo)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(await reader.readline())
            await writer.drain()
        except (ssl.SSLError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ssl_context(settings))
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=server_hostname
        )
        version = writer.get_extra_info("ssl_object").version()
        writer.write(b"bonjour\n")
        await writer.drain()
        line = await reader.readline()
        writer.close()
        return version, line
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("name", [HOST, "localhost", "127.0.0.1"])
async def test_handshake_trusting_only_the_dev_ca(settings: Settings, name: str) -> None:
    client = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    assert client.cert_store_stats()["x509_ca"] == 1  # the dev CA and nothing else
    version, line = await handshake(settings, client, name)
    assert line == b"bonjour\n"
    assert version in ("TLSv1.2", "TLSv1.3")


async def test_handshake_rejects_other_ca_and_wrong_name(
    settings: Settings, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    create_dev_ca(other, HOST)
    stranger = ssl.create_default_context(cafile=str(other / "ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(settings, stranger, HOST)
    trusting = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(settings, trusting, "autre.example")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_handshake_refuses_tls_11(settings: Settings) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cafile=str(settings.tls_dir / "ca.crt"))
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await handshake(settings, old, HOST)


def test_server_certificate_names_the_autoconfiguration_hosts(tmp_path: Path) -> None:
    """Thunderbird and Outlook ask ``autoconfig.<domain>`` and ``autodiscover.<domain>`` over
    HTTPS: the development certificate names them for every mail domain it is given."""
    tls = tmp_path / "tls"
    create_dev_ca(tls, HOST, ["cabinet.test", "Clinique-Été.test"])
    leaf = load_chain(tls / "server.crt")[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        HOST,
        "localhost",
        "autoconfig.cabinet.test",
        "autodiscover.cabinet.test",
        "autoconfig.xn--clinique-t-j7ab.test",
        "autodiscover.xn--clinique-t-j7ab.test",
    ]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=825)
