"""DKIM signing keys: one RSA 2048 key per mail domain and selector (RFC 6376 §3.3, §3.6.1).

Keys live in ``<data>/keys/dkim/<domain>.<selector>.key`` (PEM, mode 0600, directory 0700).
``caducee init`` creates the key of the practice's domain, signing creates a missing one on
first use, and ``caducee dns`` prints the TXT record to publish at
``<selector>._domainkey.<domain>``. Several nodes must share the same files (copy
``keys/dkim/`` like the master key), since DNS publishes one public key per selector.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from caducee.config import Settings
from caducee.domain.addresses import normalize_domain
from caducee.errors import ConfigurationError, InvalidInput
from caducee.store.crypto import check_private_file, write_private_file

log = logging.getLogger(__name__)

KEY_BITS = 2048
#: A TXT character-string holds at most 255 octets (RFC 1035 §3.3.14); longer values are split.
TXT_CHUNK = 255
_SELECTOR = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def dkim_dir(settings: Settings) -> Path:
    return settings.keys_dir / "dkim"


def check_selector(selector: str) -> str:
    """A selector is a sub-domain (RFC 6376 §3.1): lower-case LDH labels separated by dots."""
    clean = selector.strip().lower()
    if not _SELECTOR.match(clean):
        raise InvalidInput(
            f"Sélecteur DKIM invalide « {selector} » : lettres, chiffres, tirets et points.",
            f"Invalid DKIM selector '{selector}': letters, digits, hyphens and dots.",
        )
    return clean


def key_path(settings: Settings, domain: str, selector: str | None = None) -> Path:
    """The key file of ``domain`` (normalised) and ``selector`` (default: the configured one)."""
    clean_selector = check_selector(selector or settings.dkim_selector)
    return dkim_dir(settings) / f"{normalize_domain(domain)}.{clean_selector}.key"


def split_txt(value: str) -> list[str]:
    """``value`` cut into character-strings of at most 255 octets (ASCII record text)."""
    raw = value.encode("ascii")
    return [raw[i : i + TXT_CHUNK].decode("ascii") for i in range(0, len(raw), TXT_CHUNK)]


@dataclass(frozen=True)
class DkimKey:
    """A domain's DKIM private key and what DNS must publish for it."""

    domain: str
    selector: str
    path: Path
    private_pem: bytes

    @property
    def dns_name(self) -> str:
        """The owner of the key record (RFC 6376 §3.6.2.1)."""
        return f"{self.selector}._domainkey.{self.domain}"

    def public_key_der(self) -> bytes:
        """The SubjectPublicKeyInfo (DER) of the key, as ``p=`` carries it (RFC 6376 §3.6.1)."""
        private = serialization.load_pem_private_key(self.private_pem, password=None)
        return private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def dns_txt(self) -> str:
        """The key record text: ``v=DKIM1; k=rsa; p=<base64>``."""
        p = base64.b64encode(self.public_key_der()).decode("ascii")
        return f"v=DKIM1; k=rsa; p={p}"

    def dns_txt_strings(self) -> list[str]:
        """:meth:`dns_txt` split into 255-octet character-strings."""
        return split_txt(self.dns_txt())


def load_dkim_key(settings: Settings, domain: str, selector: str | None = None) -> DkimKey | None:
    """The key of ``domain`` if its file exists. Refuses a file others may read."""
    path = key_path(settings, domain, selector)
    if not path.exists():
        return None
    check_private_file(path)
    pem = path.read_bytes()
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"Clé DKIM illisible : {path}. Supprimez-la pour qu'une nouvelle soit créée "
            "(puis publiez le nouvel enregistrement DNS, voir « caducee dns »).",
            f"Unreadable DKIM key: {path}. Delete it so that a new one is created "
            "(then publish the new DNS record, see 'caducee dns').",
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ConfigurationError(
            f"La clé DKIM {path} n'est pas une clé RSA.",
            f"DKIM key {path} is not an RSA key.",
        )
    return DkimKey(
        normalize_domain(domain), check_selector(selector or settings.dkim_selector), path, pem
    )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dkim_key(settings: Settings, domain: str, selector: str | None = None) -> DkimKey:
    """The key of ``domain``, created (RSA 2048, PKCS#1 PEM, 0600) if it does not exist yet.

    Creation is atomic and never replaces an existing key: when two processes race, both end
    up with the key that was linked first.
    """
    existing = load_dkim_key(settings, domain, selector)
    if existing is not None:
        return existing
    path = key_path(settings, domain, selector)
    settings.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "RSA PRIVATE KEY", what dkimpy reads
        serialization.NoEncryption(),
    )
    staging = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    write_private_file(staging, pem.decode("ascii"))  # 0600, directory 0700, fsynced
    try:
        os.link(staging, path)  # fails if another process created the key meanwhile
    except FileExistsError:
        pass
    else:
        log.info(
            "created DKIM key for %s (selector %s); publish its DNS record (caducee dns)",
            domain,
            selector or settings.dkim_selector,
        )
    finally:
        staging.unlink(missing_ok=True)
        _fsync_dir(path.parent)
    created = load_dkim_key(settings, domain, selector)
    assert created is not None
    return created
