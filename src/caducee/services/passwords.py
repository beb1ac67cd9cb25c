"""Password hashing (argon2id) and the strength rule for account passwords."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from caducee.errors import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 256

# argon2id with the library's RFC 9106 "low memory" defaults (64 MiB, t=3, p=4).
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Constant-time verification of ``password`` against an argon2 hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's (rehash on login)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def check_strength(password: str, login: str = "") -> None:
    """Refuse weak passwords with a clear reason.

    At least 12 characters mixing at least three of: lower case, upper case, digits, other
    characters (or 16 characters of any kind); not the login or part of it; not one repeated
    character.
    """

    def weak(fr: str, en: str) -> InvalidInput:
        return InvalidInput(f"Mot de passe trop faible : {fr}", f"Password too weak: {en}")

    if len(password) > MAX_LENGTH:
        raise weak(f"{MAX_LENGTH} caractères au plus.", f"at most {MAX_LENGTH} characters.")
    if len(password) < MIN_LENGTH:
        raise weak(
            f"{MIN_LENGTH} caractères au moins (il en a {len(password)}).",
            f"at least {MIN_LENGTH} characters (it has {len(password)}).",
        )
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3 and len(password) < 16:
        raise weak(
            "mélangez minuscules, majuscules, chiffres et symboles (trois sortes au moins), "
            "ou utilisez 16 caractères au moins.",
            "mix lower case, upper case, digits and symbols (at least three kinds), "
            "or use at least 16 characters.",
        )
    if len(set(password)) < 5:
        raise weak("trop de caractères répétés.", "too many repeated characters.")
    local = login.partition("@")[0].lower()
    if local and len(local) >= 4 and local in password.lower():
        raise weak("il ne doit pas contenir l'identifiant.", "it must not contain the login.")
