"""Envelope encryption at rest (AES-256-GCM).

A 256-bit *master key* wraps one *data key* per scope (a mailbox, or the system scope for account
secrets). Data is sealed with its scope's data key; the associated data names the scope, the
record and the field, so a ciphertext moved to another mailbox, record or column fails to open.

Sealed format: ``b"\\x01" + nonce(12) + ciphertext||tag``.

Data of :data:`SLICE` bytes or more is encrypted and decrypted a slice at a time (the same
AES-GCM, the same format): the library holds the interpreter lock for a whole call (33 ms or
more for 20 MB), and between slices other threads and the event loop get it back (issue 17;
:class:`~caducee.store.keyring.Keyring` runs such data in a worker thread).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from caducee.errors import ConfigurationError, IntegrityError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Data this big is sealed and opened a slice of this many bytes at a time.
SLICE = 1024 * 1024
FORMAT_V1 = b"\x01"


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad``."""
    nonce = os.urandom(NONCE_BYTES)
    if len(plaintext) < SLICE:
        return FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    pieces = [FORMAT_V1, nonce]
    with memoryview(plaintext) as view:
        for start in range(0, len(plaintext), SLICE):
            pieces.append(encryptor.update(view[start : start + SLICE]))
    pieces += [encryptor.finalize(), encryptor.tag]
    return b"".join(pieces)


def _open_slices(key: bytes, nonce: bytes, body: bytes, aad: bytes) -> bytes:
    """AES-GCM decryption a slice at a time; nothing is returned unless the tag verifies."""
    tag = body[-TAG_BYTES:]
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    pieces = []
    with memoryview(body) as view:
        for start in range(0, len(body) - TAG_BYTES, SLICE):
            pieces.append(decryptor.update(view[start : min(start + SLICE, len(body) - TAG_BYTES)]))
    pieces.append(decryptor.finalize())  # raises InvalidTag
    return b"".join(pieces)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt what :func:`seal` produced; raise :class:`IntegrityError` if it was tampered with."""
    return _open(key, None, sealed, aad)


class Opener:
    """:func:`open_sealed` for many small records under one key: the cipher is set up once
    (a full sync opens one record per message)."""

    __slots__ = ("_cipher", "_key")

    def __init__(self, key: bytes) -> None:
        self._key, self._cipher = key, AESGCM(key)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        return _open(self._key, self._cipher, sealed, aad)


def _open(key: bytes, cipher: AESGCM | None, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != FORMAT_V1:
        raise IntegrityError(
            "Donnée chiffrée illisible (format inconnu ou tronqué).",
            "Unreadable encrypted data (unknown or truncated format).",
        )
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        if len(body) < SLICE:
            return (cipher or AESGCM(key)).decrypt(nonce, body, aad)
        return _open_slices(key, nonce, body, aad)
    except InvalidTag:
        raise IntegrityError(
            "Échec du déchiffrement : donnée altérée, déplacée ou mauvaise clé.",
            "Decryption failed: data altered, moved, or wrong key.",
        ) from None


def aad_for(scope: str, record: str, field: str) -> bytes:
    """Associated data binding a ciphertext to its scope, record and field."""
    return f"caducee:v1|{scope}|{record}|{field}".encode()


@dataclass(frozen=True)
class MasterKey:
    """A master key and its public identifier (first 16 hex digits of SHA-256 of the key)."""

    key: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"caducee-master-key-id" + self.key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_BYTES))

    def encoded(self) -> str:
        return base64.b64encode(self.key).decode("ascii")

    @classmethod
    def decode(cls, text: str, origin: str) -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise ConfigurationError(
                f"Clé maîtresse invalide ({origin}) : 32 octets encodés en base64 attendus.",
                f"Invalid master key ({origin}): expected 32 bytes encoded in base64.",
            )
        return cls(raw)

    def wrap(self, data_key: bytes, scope: str) -> bytes:
        return seal(self.key, data_key, aad_for("master", scope, "data-key"))

    def unwrap(self, wrapped: bytes, scope: str) -> bytes:
        return open_sealed(self.key, wrapped, aad_for("master", scope, "data-key"))


def check_private_file(path: Path) -> None:
    """Refuse a secret file that group or others may read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            f"Le fichier de clé {path} est accessible à d'autres utilisateurs "
            f"(droits {stat.filemode(mode)}). Corrigez avec : chmod 600 {path}",
            f"Key file {path} is accessible to other users "
            f"(mode {stat.filemode(mode)}). Fix it with: chmod 600 {path}",
        )


def write_private_file(path: Path, content: str) -> None:
    """Create ``path`` atomically with mode 0600 (its directory 0700), fsynced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_key_file(path: Path) -> MasterKey:
    check_private_file(path)
    return MasterKey.decode(path.read_text("ascii"), str(path))
