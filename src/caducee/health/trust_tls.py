"""TLS of the MSSanté trust space: the trust store (IGC-Santé CAs in production), revocation
lists keeping the last valid one, the inbound check of an operator's client certificate, and the
client context used to deliver to another operator.

Inbound, the MX asks every client for a certificate (``CERT_OPTIONAL``) and lets OpenSSL check
the chain against the trust store (plus the system's CAs, so that ordinary senders presenting a
public certificate still connect) but not its dates: expiry and revocation are checked here,
after the handshake, so that the sender gets a clear 5.7.x reply and the refusal is audited
rather than a bare TLS alert. :func:`check_peer` then applies the MSSanté rules to a MAIL FROM
domain listed in the whitelist: TLS 1.2 or 1.3 (1.2 only with ECDHE-RSA and AES-GCM or
AES-CBC-SHA2), a certificate issued by a trust-store CA, valid now, not revoked, whose subject is
one of the DNs listed for that domain.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from caducee.config import Settings
from caducee.errors import ConfigurationError
from caducee.health.whitelist import canonical_name

log = logging.getLogger(__name__)

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: dates are checked by :func:`check_peer` instead.
_NO_CHECK_TIME = 0x200000
#: TLS 1.2 suites the MSSanté rules allow (OpenSSL names); TLS 1.3 suites are all AEAD.
TLS12_SUITES = (
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-RSA-AES256-SHA384",
)


@dataclass(frozen=True)
class Refusal:
    """Why an operator's connection may not carry mail for its domain (SMTP reply parts)."""

    status: str  # enhanced status code, 5.7.x
    fr: str
    en: str
    reason: str  # short code for the audit log


@dataclass
class TrustStore:
    """The CAs operators' certificates must chain to, and their revocation lists."""

    ca_file: Path | None
    cas: list[x509.Certificate] = field(default_factory=list)
    #: Issuer subject (DER) → the newest valid CRL of that issuer.
    crls: dict[bytes, x509.CertificateRevocationList] = field(default_factory=dict)

    def issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        for ca in self.cas:
            if ca.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"Magasin de confiance {path} illisible : {exc.strerror}.",
            f"Trust store {path} unreadable: {exc.strerror}.",
        ) from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigurationError(
            f"Magasin de confiance {path} : certificats PEM attendus.",
            f"Trust store {path}: PEM certificates expected.",
        ) from None


def _read_crl(path: Path) -> x509.CertificateRevocationList | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        log.warning("unreadable CRL ignored file=%s", path.name)
        return None


def _valid_crl(
    crl: x509.CertificateRevocationList, cas: list[x509.Certificate]
) -> x509.Certificate | None:
    """The CA that signed ``crl``, if its signature checks."""
    for ca in cas:
        if ca.subject == crl.issuer and crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
            return ca
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def load_trust_store(settings: Settings, *, keep: bool = True) -> TrustStore:
    """Read ``trust_ca_file`` and the CRLs of ``trust_crl_dir``. A CRL whose signature does not
    check is ignored; the newest valid CRL of each CA is kept in ``<data>/trust/crl-valid`` so
    that a later bad or missing CRL does not lose it (the last valid CRL keeps applying).
    ``keep=False`` only reads (the readiness check: ``caducee doctor`` may run as another user,
    and must not leave files the server cannot replace)."""
    if not settings.trust_ca_file:
        return TrustStore(None)
    ca_path = Path(settings.trust_ca_file)
    store = TrustStore(ca_path, _load_certs(ca_path))
    kept_dir = settings.data_dir / "trust" / "crl-valid"
    candidates: list[Path] = []
    if kept_dir.is_dir():
        candidates += sorted(kept_dir.glob("*.der"))
    if settings.trust_crl_dir and Path(settings.trust_crl_dir).is_dir():
        candidates += sorted(p for p in Path(settings.trust_crl_dir).iterdir() if p.is_file())
    for path in candidates:
        crl = _read_crl(path)
        if crl is None:
            continue
        ca = _valid_crl(crl, store.cas)
        if ca is None:
            log.warning("CRL with a bad signature or unknown issuer ignored file=%s", path.name)
            continue
        key = crl.issuer.public_bytes()
        current = store.crls.get(key)
        if current is None or crl.last_update_utc > current.last_update_utc:
            store.crls[key] = crl
    if store.crls and keep:
        kept_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key, crl in store.crls.items():
            name = hashlib.sha256(key).hexdigest()[:32]
            _write_atomic(kept_dir / f"{name}.der", crl.public_bytes(serialization.Encoding.DER))
    return store


def accept_client_certificates(context: ssl.SSLContext, store: TrustStore) -> None:
    """Make a server context ask for a client certificate and check its chain (not its dates)
    against the trust store and the system's CAs."""
    if store.ca_file is None:
        return
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    context.load_verify_locations(cafile=str(store.ca_file))
    context.verify_flags = ssl.VerifyFlags(context.verify_flags | _NO_CHECK_TIME)


def check_peer(
    store: TrustStore,
    domain: str,
    allowed_dns: frozenset[str],
    peer_der: bytes | None,
    tls_version: str | None,
    cipher: str | None,
    *,
    now: datetime | None = None,
) -> Refusal | None:
    """Whether a connection may carry mail from ``domain`` of the trust space; None if it may."""
    if tls_version is None:
        return Refusal(
            "5.7.10",
            f"{domain} appartient à l'espace de confiance MSSanté : TLS avec certificat "
            "d'opérateur obligatoire (STARTTLS).",
            f"{domain} belongs to the MSSanté trust space: TLS with an operator certificate is "
            "required (STARTTLS).",
            "plaintext",
        )
    if tls_version not in ("TLSv1.2", "TLSv1.3") or (
        tls_version == "TLSv1.2" and cipher not in TLS12_SUITES
    ):
        return Refusal(
            "5.7.10",
            f"Espace de confiance MSSanté : {tls_version} / {cipher} non autorisé (TLS 1.3, ou "
            "TLS 1.2 avec ECDHE-RSA et AES-GCM ou AES-CBC-SHA2).",
            f"MSSanté trust space: {tls_version} / {cipher} not allowed (TLS 1.3, or TLS 1.2 "
            "with ECDHE-RSA and AES-GCM or AES-CBC-SHA2).",
            "weak-tls",
        )
    if peer_der is None:
        return Refusal(
            "5.7.1",
            f"Espace de confiance MSSanté : aucun certificat client présenté pour {domain}.",
            f"MSSanté trust space: no client certificate presented for {domain}.",
            "no-certificate",
        )
    cert = x509.load_der_x509_certificate(peer_der)
    issuer = store.issuer_of(cert)
    if issuer is None:
        return Refusal(
            "5.7.1",
            "Espace de confiance MSSanté : certificat client non émis par une autorité du "
            "magasin de confiance.",
            "MSSanté trust space: client certificate not issued by a trust-store authority.",
            "untrusted-issuer",
        )
    moment = now or datetime.now(UTC)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        return Refusal(
            "5.7.1",
            f"Espace de confiance MSSanté : certificat client hors de sa période de validité "
            f"(expire le {cert.not_valid_after_utc:%Y-%m-%d}).",
            f"MSSanté trust space: client certificate outside its validity period (expires "
            f"{cert.not_valid_after_utc:%Y-%m-%d}).",
            "expired",
        )
    crl = store.crls.get(issuer.subject.public_bytes())
    if crl is not None and crl.get_revoked_certificate_by_serial_number(cert.serial_number):
        return Refusal(
            "5.7.1",
            "Espace de confiance MSSanté : certificat client révoqué.",
            "MSSanté trust space: client certificate revoked.",
            "revoked",
        )
    if canonical_name(cert.subject) not in allowed_dns:
        return Refusal(
            "5.7.1",
            f"Espace de confiance MSSanté : le certificat présenté n'est pas celui d'un "
            f"opérateur de {domain} selon la liste blanche.",
            f"MSSanté trust space: the certificate presented is not one of {domain}'s "
            "operator according to the whitelist.",
            "dn-mismatch",
        )
    return None


def operator_client_context(settings: Settings, store: TrustStore) -> ssl.SSLContext:
    """TLS context to deliver to another operator: TLS ≥ 1.2 with the allowed suites, the peer
    verified against the trust store only, our operator certificate presented."""
    if store.ca_file is None:
        raise ConfigurationError(
            "Espace de confiance MSSanté : [trust] ca_file n'est pas réglé.",
            "MSSanté trust space: [trust] ca_file is not set.",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(":".join(TLS12_SUITES))
    context.load_verify_locations(cafile=str(store.ca_file))
    cert = settings.trust_client_cert or str(settings.tls_dir / "server.crt")
    key = settings.trust_client_key or str(settings.tls_dir / "server.key")
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"Certificat d'opérateur {cert} ou clé {key} inutilisable ({exc}).",
            f"Operator certificate {cert} or key {key} unusable ({exc}).",
        ) from None
    return context
