"""Parsing the bearer-token SASL responses shared by SMTP and IMAP.

- OAUTHBEARER (RFC 7628 §3.1): ``gs2-header kvsep *kvpair kvsep`` where the GS2 header is
  ``n,a=<authzid>,`` (or ``n,,``), ``kvsep`` is ``\\x01`` and one pair is ``auth=Bearer <token>``.
- XOAUTH2 (Google's): ``user=<login>\\x01auth=Bearer <token>\\x01\\x01``.

Each returns ``(user, token)`` — ``user`` may be "" for OAUTHBEARER without ``a=`` — or None when
the response is malformed. Nothing is verified here.
"""

from __future__ import annotations

#: Longest response accepted (a JWT is a few KB).
MAX_RESPONSE = 16 * 1024


def _pairs(fields: list[bytes]) -> dict[str, str] | None:
    pairs: dict[str, str] = {}
    for field in fields:
        if not field:
            continue
        key, sep, value = field.partition(b"=")
        if not sep:
            return None
        try:
            pairs[key.decode("ascii").lower()] = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return pairs


def _bearer(pairs: dict[str, str]) -> str | None:
    auth = pairs.get("auth", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def parse_oauthbearer(response: bytes) -> tuple[str, str] | None:
    if len(response) > MAX_RESPONSE or not response.endswith(b"\x01\x01"):
        return None
    header, sep, rest = response.partition(b"\x01")
    if not sep:
        return None
    gs2 = header.split(b",")
    if len(gs2) < 3 or gs2[0] not in (b"n", b"y"):
        return None  # channel binding ("p=") is not offered
    user = ""
    if gs2[1]:
        if not gs2[1].startswith(b"a="):
            return None
        try:
            # RFC 5801 §4: "=2C" is a comma and "=3D" an equals sign in the authzid.
            user = gs2[1][2:].decode("utf-8").replace("=2C", ",").replace("=3D", "=")
        except UnicodeDecodeError:
            return None
    pairs = _pairs(rest.split(b"\x01"))
    if pairs is None:
        return None
    token = _bearer(pairs)
    return (user, token) if token else None


def parse_xoauth2(response: bytes) -> tuple[str, str] | None:
    if len(response) > MAX_RESPONSE or not response.endswith(b"\x01\x01"):
        return None
    pairs = _pairs(response.split(b"\x01"))
    if pairs is None or not pairs.get("user"):
        return None
    token = _bearer(pairs)
    return (pairs["user"], token) if token else None
