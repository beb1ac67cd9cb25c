"""TLS material: a local development CA, the server's SSL context, certificate expiry.

``create_dev_ca`` gives a fresh installation working TLS on every door (HTTPS, SMTP STARTTLS,
IMAPS, ...) without a public CA; production replaces ``tls/server.crt`` (full chain, leaf first)
and ``tls/server.key`` with a real certificate (see docs/operations.md).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import stat
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from caducee.config import Settings
from caducee.errors import AlreadyExists, ConfigurationError, InvalidInput

log = logging.getLogger(__name__)

CA_KEY = "ca.key"
CA_CERT = "ca.crt"
SERVER_KEY = "server.key"
SERVER_CERT = "server.crt"

CA_VALIDITY = timedelta(days=3650)
# 825 days: the longest validity Apple platforms accept for a TLS server certificate, counted
# from notBefore to notAfter: the back-dating below is part of it.
SERVER_VALIDITY = timedelta(days=825)
# Tolerate clocks that are slightly behind ours.
BACKDATE = timedelta(hours=1)
#: The names mail clients ask for a domain's configuration on (``caducee dns`` publishes them).
AUTOCONFIG_PREFIXES = ("autoconfig.", "autodiscover.")
# X.520 upper bound of a commonName.
CN_MAX = 64


def _ascii_hostname(hostname: str) -> str:
    """The hostname as it goes into a certificate (IDNA A-label), or InvalidInput."""
    name = hostname.strip().rstrip(".").lower()
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_name = ""
    if not ascii_name or any(c.isspace() or c in "/:@" for c in ascii_name):
        raise InvalidInput(
            f"Nom d'hôte {hostname!r} invalide pour un certificat TLS.",
            f"Hostname {hostname!r} is not valid for a TLS certificate.",
        )
    return ascii_name


def _fit_cn(text: str, fallback: str) -> str:
    return text if len(text) <= CN_MAX else fallback


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode``; fail if it exists (O_EXCL), fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # O_CREAT's mode went through the umask: set it exactly
        os.fsync(fd)
    finally:
        os.close(fd)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_dev_ca(tls_dir: Path, hostname: str, domains: Sequence[str] = ()) -> None:
    """Create a development CA and a server certificate for ``hostname`` it signs.

    The certificate also names ``autoconfig.<domain>`` and ``autodiscover.<domain>`` of each
    mail domain of ``domains`` (where Thunderbird and Outlook fetch their configuration), and
    ``localhost``; it is valid :data:`SERVER_VALIDITY` in all, back-dating included.

    Writes ``ca.key`` (0600), ``ca.crt``, ``server.key`` (0600) and ``server.crt`` (the leaf,
    then the CA) in ``tls_dir`` (made 0700). Never overwrites: if any of the four files exists,
    nothing is written and :class:`AlreadyExists` is raised.
    """
    name = _ascii_hostname(hostname)
    paths = [tls_dir / n for n in (CA_KEY, CA_CERT, SERVER_KEY, SERVER_CERT)]
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing:
        listed = ", ".join(str(p) for p in existing)
        raise AlreadyExists(
            f"Des fichiers TLS existent déjà ({listed}) ; ils ne sont pas remplacés. "
            "Déplacez-les d'abord si vous voulez vraiment un nouveau certificat.",
            f"TLS files already exist ({listed}); they are not replaced. "
            "Move them away first if you really want a new certificate.",
        )
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o700)

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Caducée"),
            x509.NameAttribute(
                NameOID.COMMON_NAME,
                _fit_cn(f"Caducée — AC de développement ({name})", "Caducée — AC de développement"),
            ),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    mail_names = [
        prefix + _ascii_hostname(domain) for domain in domains for prefix in AUTOCONFIG_PREFIXES
    ]
    dns_names = list(dict.fromkeys([name, "localhost", *mail_names]))
    san: list[x509.GeneralName] = []
    for dns in dns_names:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(dns)))
        except ValueError:
            san.append(x509.DNSName(dns))
    san += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Caducée"),
                    x509.NameAttribute(NameOID.COMMON_NAME, _fit_cn(name, "Caducée")),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now - BACKDATE + SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    # Keys first: a crash half-way leaves no certificate pointing at a missing key.
    _write_new(tls_dir / CA_KEY, _pem_key(ca_key), 0o600)
    _write_new(tls_dir / SERVER_KEY, _pem_key(server_key), 0o600)
    _write_new(tls_dir / CA_CERT, ca_pem, 0o644)
    _write_new(
        tls_dir / SERVER_CERT, server_cert.public_bytes(serialization.Encoding.PEM) + ca_pem, 0o644
    )
    dir_fd = os.open(tls_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def server_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of every door: ``tls/server.crt`` + ``tls/server.key``, TLS ≥ 1.2."""
    cert = settings.tls_dir / SERVER_CERT
    key = settings.tls_dir / SERVER_KEY
    missing = [p for p in (cert, key) if not p.is_file()]
    if missing:
        listed = ", ".join(str(p) for p in missing)
        raise ConfigurationError(
            f"Certificat TLS introuvable ({listed}). Placez la chaîne complète du certificat "
            f"dans {cert} et sa clé privée dans {key}, ou créez un certificat de développement "
            "avec « caducee init ».",
            f"TLS certificate not found ({listed}). Put the full certificate chain in {cert} "
            f"and its private key in {key}, or create a development certificate with "
            "'caducee init'.",
        )
    key_mode = stat.S_IMODE(key.stat().st_mode)
    if key_mode & 0o077:
        log.warning(
            "%s tls_key=%s mode=%s",
            "clé privée TLS lisible par d'autres utilisateurs, corrigez avec chmod 600 "
            "/ TLS private key readable by other users, fix with chmod 600",
            key,
            oct(key_mode),
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"Certificat TLS {cert} ou clé {key} inutilisable ({exc}). Vérifiez que la clé "
            "correspond au certificat et que les deux sont au format PEM.",
            f"TLS certificate {cert} or key {key} unusable ({exc}). Check that the key "
            "matches the certificate and that both are PEM.",
        ) from None
    return context


def certificate_not_after(path: Path) -> datetime:
    """The expiry (UTC, timezone-aware) of the first certificate in the PEM file ``path``."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(
            f"Certificat TLS introuvable : {path}.",
            f"TLS certificate not found: {path}.",
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"Certificat TLS {path} illisible ({exc}).",
            f"TLS certificate {path} is unreadable ({exc}).",
        ) from None
    return cert.not_valid_after_utc
