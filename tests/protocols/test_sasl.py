"""The one SASL PLAIN decoder (RFC 4616) and base64 response decoder (RFC 4422) that SMTP, IMAP
and POP3 share: a table of client responses and what each decodes into, or why it is refused."""

from __future__ import annotations

import base64

import pytest

from caducee.protocols.sasl import PlainCredentials, SaslError, decode_response, parse_plain

MALFORMED = "Reponse PLAIN mal formee"
INCOMPLETE = "Reponse PLAIN incomplete"
AUTHZID = "Identite d'autorisation differente non prise en charge"

PLAIN_TABLE: list[tuple[bytes, PlainCredentials | str]] = [
    # RFC 4616 §2: [authzid] NUL authcid NUL passwd
    (b"\0dr.martin@cabinet.test\0s3cret", PlainCredentials("dr.martin@cabinet.test", "s3cret")),
    (
        b"dr.martin@cabinet.test\0dr.martin@cabinet.test\0s3cret",
        PlainCredentials("dr.martin@cabinet.test", "s3cret", "dr.martin@cabinet.test"),
    ),
    (  # the authzid names oneself, in another case: logins are addresses
        b"Dr.Martin@Cabinet.test\0dr.martin@cabinet.test\0pw",
        PlainCredentials("dr.martin@cabinet.test", "pw", "Dr.Martin@Cabinet.test"),
    ),
    (  # UTF-8 in both identities and password (RFC 4616 §2: UTF8-SAFE)
        "\0élodie@cabinet.test\0mot-de-passe-été".encode(),
        PlainCredentials("élodie@cabinet.test", "mot-de-passe-été"),
    ),
    (b"\0a\0pass word with spaces", PlainCredentials("a", "pass word with spaces")),
    (b"\0a\0" + b"p" * 255, PlainCredentials("a", "p" * 255)),  # §2: up to 255 octets at least
    # number of NULs
    (b"", MALFORMED),
    (b"sans-nul", MALFORMED),
    (b"\0only-one-nul", MALFORMED),
    (b"\0a\0b\0c", MALFORMED),  # a NUL inside the password is not SAFE
    (b"a\0b\0c\0", MALFORMED),
    (b"\0\0\0", MALFORMED),
    # empty authcid or password (1*SAFE)
    (b"\0a\0", INCOMPLETE),
    (b"\0\0pw", INCOMPLETE),
    (b"\0\0", INCOMPLETE),
    (b"a\0\0pw", INCOMPLETE),
    # invalid UTF-8 in any field
    (b"\0a\0\xff", MALFORMED),
    (b"\0\xc3\0pw", MALFORMED),
    (b"\xed\xa0\x80\0a\0pw", MALFORMED),  # an encoded surrogate
    (b"\0a\0\xc0\xafpw", MALFORMED),  # an overlong encoding
    # acting as someone else
    (b"autre@cabinet.test\0a@cabinet.test\0pw", AUTHZID),
]


@pytest.mark.parametrize(("message", "expected"), PLAIN_TABLE)
def test_parse_plain(message: bytes, expected: PlainCredentials | str) -> None:
    if isinstance(expected, PlainCredentials):
        assert parse_plain(message) == expected
        return
    with pytest.raises(SaslError) as refused:
        parse_plain(message)
    assert refused.value.fr == expected
    assert refused.value.authorization == (expected == AUTHZID)
    assert refused.value.text.startswith(expected + " / ")


RESPONSE_TABLE: list[tuple[str | bytes, bytes | None]] = [
    ("=", b""),  # the empty response (RFC 4954 §4, RFC 4959 §3, RFC 5034 §4)
    (b"=", b""),
    ("", b""),
    ("AGEAYg==", b"\0a\0b"),
    (b"AGEAYg==", b"\0a\0b"),
    (base64.b64encode("\0é\0p".encode()).decode(), "\0é\0p".encode()),
    ("AGEAYg", None),  # padding is required
    ("AGEAYg=", None),
    ("AGEA Yg==", None),  # no whitespace inside
    ("AGEAYg==\t", None),
    ("!!!", None),
    ("AGEA-g==", None),  # the URL-safe alphabet is not base64 (RFC 4648 §4 vs §5)
    ("*", None),
    ("==", None),
    ("AGEAYg==\ufffd", None),  # what a non-ASCII octet decodes to
    (b"AGEAYg==\xff", None),
]


@pytest.mark.parametrize(("response", "expected"), RESPONSE_TABLE)
def test_decode_response(response: str | bytes, expected: bytes | None) -> None:
    if expected is not None:
        assert decode_response(response) == expected
        return
    with pytest.raises(SaslError) as refused:
        decode_response(response)
    assert refused.value.fr == "Reponse base64 illisible"


def test_the_password_never_shows() -> None:
    plain = parse_plain(b"\0a@cabinet.test\0tres-secret")
    assert "tres-secret" not in repr(plain)
