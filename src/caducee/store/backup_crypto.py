"""Encryption of backup archives: the backup key pair, files encrypted in streaming chunks, the
authenticated manifest.

The backup key is an X25519 key pair, separate from the master key. The data dir keeps only the
public key (``keys/backup.pub``), so that scheduled backups can encrypt; the private key is
shown once when the pair is created and is needed to verify fully and to restore.

Each archived file is encrypted on its own, never whole in memory:

- header: ``CADUCEE-BK`` + version (1) + an ephemeral X25519 public key (32) + a salt (16);
- file key: HKDF-SHA256 of the X25519 shared secret (ephemeral × backup public key), with the
  salt, and the file's name in the ``info`` (a file moved to another name does not decrypt);
- body: AES-256-GCM per 1 MiB chunk, the nonce the chunk's counter (11 bytes) and a last-chunk
  flag (1 byte), the header as associated data: a truncated, reordered or spliced file fails.

The manifest is authenticated with an HMAC-SHA256 whose key derives, the same way, from a
shared secret between an ephemeral key and the backup key pair: only the private key checks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from caducee.errors import ConfigurationError, IntegrityError

MAGIC = b"CADUCEE-BK"
VERSION = 1
CHUNK = 1024 * 1024
TAG = 16
_SALT = 16
HEADER_SIZE = len(MAGIC) + 1 + 32 + _SALT
_SECRET_PREFIX = "CADUCEE-BACKUP-SECRET-1 "  # noqa: S105 - a label, not a secret
_PUBLIC_PREFIX = "CADUCEE-BACKUP-PUBLIC-1 "


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class BackupPublicKey:
    key: X25519PublicKey

    @property
    def raw(self) -> bytes:
        return self.key.public_bytes_raw()

    @property
    def fingerprint(self) -> str:
        """What people compare: the first 16 hex digits of the key's SHA-256."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def encoded(self) -> str:
        return _PUBLIC_PREFIX + _b64(self.raw)


@dataclass(frozen=True)
class BackupPrivateKey:
    key: X25519PrivateKey

    @staticmethod
    def generate() -> BackupPrivateKey:
        return BackupPrivateKey(X25519PrivateKey.generate())

    @property
    def public(self) -> BackupPublicKey:
        return BackupPublicKey(self.key.public_key())

    def encoded(self) -> str:
        return _SECRET_PREFIX + _b64(self.key.private_bytes_raw())


def _bad_key(what: str) -> ConfigurationError:
    return ConfigurationError(
        f"Clé de sauvegarde illisible ({what}) : une ligne « {_SECRET_PREFIX.strip()} … » "
        f"ou « {_PUBLIC_PREFIX.strip()} … » est attendue.",
        f"Unreadable backup key ({what}): a line '{_SECRET_PREFIX.strip()} …' "
        f"or '{_PUBLIC_PREFIX.strip()} …' is expected.",
    )


def parse_private_key(text: str) -> BackupPrivateKey:
    line = text.strip()
    if not line.startswith(_SECRET_PREFIX):
        raise _bad_key("clé privée / private key")
    try:
        raw = _unb64(line[len(_SECRET_PREFIX) :])
        return BackupPrivateKey(X25519PrivateKey.from_private_bytes(raw))
    except ValueError:
        raise _bad_key("clé privée / private key") from None


def parse_public_key(text: str) -> BackupPublicKey:
    line = text.strip()
    if not line.startswith(_PUBLIC_PREFIX):
        raise _bad_key("clé publique / public key")
    try:
        return BackupPublicKey(
            X25519PublicKey.from_public_bytes(_unb64(line[len(_PUBLIC_PREFIX) :]))
        )
    except ValueError:
        raise _bad_key("clé publique / public key") from None


def public_key_from_raw(raw_b64: str) -> BackupPublicKey:
    try:
        return BackupPublicKey(X25519PublicKey.from_public_bytes(_unb64(raw_b64)))
    except ValueError:
        raise damaged("manifest.json", "clé publique / public key") from None


def damaged(name: str, why_fr: str, why_en: str | None = None) -> IntegrityError:
    return IntegrityError(
        f"Archive de sauvegarde endommagée : {name} ({why_fr}). Utilisez une autre sauvegarde.",
        f"Damaged backup archive: {name} ({why_en or why_fr}). Use another backup.",
    )


def _derive(shared: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(shared)


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _file_info(name: str) -> bytes:
    return b"caducee-backup-v1 file:" + name.encode("utf-8")


def encrypt_stream(
    source: IO[bytes], target: IO[bytes], recipient: BackupPublicKey, name: str
) -> tuple[int, str]:
    """Encrypt ``source`` into ``target`` for ``recipient``; (bytes written, their SHA-256)."""
    ephemeral = X25519PrivateKey.generate()
    salt = os.urandom(_SALT)
    header = MAGIC + bytes([VERSION]) + ephemeral.public_key().public_bytes_raw() + salt
    aead = AESGCM(_derive(ephemeral.exchange(recipient.key), salt, _file_info(name)))
    digest = hashlib.sha256(header)
    target.write(header)
    written = len(header)
    counter = 0
    current = source.read(CHUNK)
    while True:
        following = source.read(CHUNK)
        last = not following
        sealed = aead.encrypt(_nonce(counter, last), current, header)
        target.write(sealed)
        digest.update(sealed)
        written += len(sealed)
        if last:
            return written, digest.hexdigest()
        counter += 1
        current = following


def decrypt_stream(
    source: IO[bytes], target: IO[bytes] | None, key: BackupPrivateKey, name: str
) -> tuple[int, str]:
    """Decrypt ``source`` into ``target`` (None: check only); (ciphertext bytes read, their
    SHA-256). A wrong key, a flipped bit, a truncation or a spliced chunk is an
    :class:`IntegrityError`."""
    header = source.read(HEADER_SIZE)
    if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
        raise damaged(name, "en-tête invalide ou fichier tronqué", "bad header or truncated file")
    if header[len(MAGIC)] != VERSION:
        raise damaged(name, f"version {header[len(MAGIC)]} inconnue", "unknown version")
    ephemeral = X25519PublicKey.from_public_bytes(header[len(MAGIC) + 1 : len(MAGIC) + 33])
    salt = header[len(MAGIC) + 33 :]
    aead = AESGCM(_derive(key.key.exchange(ephemeral), salt, _file_info(name)))
    digest = hashlib.sha256(header)
    read = len(header)
    counter = 0
    block = source.read(CHUNK + TAG)
    while True:
        following = source.read(CHUNK + TAG) if len(block) == CHUNK + TAG else b""
        last = not following
        try:
            plain = aead.decrypt(_nonce(counter, last), block, header)
        except InvalidTag:
            raise damaged(
                name,
                "authentification échouée : fichier modifié ou tronqué, ou mauvaise clé",
                "authentication failed: file modified or truncated, or wrong key",
            ) from None
        digest.update(block)
        read += len(block)
        if target is not None:
            target.write(plain)
        if last:
            return read, digest.hexdigest()
        counter += 1
        block = following


def manifest_mac_key(shared: bytes, salt: bytes) -> bytes:
    return _derive(shared, salt, b"caducee-backup-v1 manifest")


def seal_manifest(body: bytes, recipient: BackupPublicKey) -> dict[str, str]:
    """The MAC of the manifest's canonical bytes and what the private key needs to check it."""
    ephemeral = X25519PrivateKey.generate()
    salt = os.urandom(_SALT)
    key = manifest_mac_key(ephemeral.exchange(recipient.key), salt)
    return {
        "ephemeral": _b64(ephemeral.public_key().public_bytes_raw()),
        "salt": _b64(salt),
        "hmac_sha256": hmac.new(key, body, hashlib.sha256).hexdigest(),
    }


def check_manifest(body: bytes, seal: dict[str, str], key: BackupPrivateKey) -> bool:
    try:
        ephemeral = X25519PublicKey.from_public_bytes(_unb64(seal["ephemeral"]))
        salt = _unb64(seal["salt"])
        expected = str(seal["hmac_sha256"])
    except (KeyError, ValueError, TypeError):
        return False
    mac_key = manifest_mac_key(key.key.exchange(ephemeral), salt)
    return hmac.compare_digest(hmac.new(mac_key, body, hashlib.sha256).hexdigest(), expected)
