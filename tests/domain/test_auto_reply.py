"""RFC 3834 rules that read only the message: what is never answered, and the answer's form."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.policy import default

import pytest

from caducee.domain import auto_reply
from caducee.domain.auto_reply import Absence, Answer, Kind, Original
from caducee.domain.charter import Charter

SENDER = "confrere@ailleurs.test"


def original(extra: str = "", sender: str = SENDER) -> Original:
    raw = (
        f"From: {sender}\r\nTo: dr@cabinet.test\r\nSubject: Mes résultats de glycémie\r\n"
        f"Message-ID: <m1@ailleurs.test>\r\n{extra}\r\nLe corps MARQUEUR-CORPS\r\n"
    ).encode()
    return Original.parse(raw)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("Auto-Submitted: auto-replied\r\n", "auto-submitted"),
        ("Auto-Submitted: auto-generated; owner-email=x@y\r\n", "auto-submitted"),
        ("List-Id: <liste.ailleurs.test>\r\n", "list"),
        ("List-Unsubscribe: <mailto:x@y>\r\n", "list"),
        ("Precedence: bulk\r\n", "precedence"),
        ("Precedence: list\r\n", "precedence"),
        ("Precedence: junk\r\n", "precedence"),
        (f"{auto_reply.MARKER}: absence\r\n", "ours"),
        ("X-Auto-Response-Suppress: OOF, AutoReply\r\n", "suppress"),
    ],
)
def test_never_answered_headers(extra: str, reason: str) -> None:
    assert auto_reply.suppressed(original(extra), SENDER) == reason


@pytest.mark.parametrize(
    "sender",
    [
        "",
        "<>",
        "MAILER-DAEMON@ailleurs.test",
        "postmaster@ailleurs.test",
        "noreply@ailleurs.test",
        "no-reply@ailleurs.test",
        "no_reply@ailleurs.test",
        "ne-pas-repondre@ameli.test",
        "nepasrepondre@ameli.test",
        "owner-liste@ailleurs.test",
        "liste-request@ailleurs.test",
    ],
)
def test_never_answered_senders(sender: str) -> None:
    assert auto_reply.never_answered(sender)
    assert auto_reply.suppressed(original(), sender) == "sender"


def test_ordinary_mail_may_be_answered() -> None:
    assert auto_reply.suppressed(original("Auto-Submitted: no\r\n"), SENDER) is None
    assert auto_reply.suppressed(original(), "jeanne.noreplyet@ailleurs.test") is None
    # a no-reply From behind an ordinary envelope sender is not answered either
    assert auto_reply.suppressed(original(sender="noreply@x.test"), SENDER) == "from"


def answer(kind: Kind, patient: bool, **kw: object) -> bytes:
    raw, _ = auto_reply.compose(
        Answer(kind, patient, Charter(), datetime(2025, 3, 11, 9, tzinfo=UTC), **kw),  # type: ignore[arg-type]
        original("References: <m0@cabinet.test>\r\nIn-Reply-To: <m0@cabinet.test>\r\n"),
        from_address="dr@cabinet.test",
        to_address=SENDER,
        hostname="mail.test.example",
    )
    return raw


def test_answer_headers_rfc3834() -> None:
    raw = answer(Kind.ACK, False)
    parsed = message_from_bytes(raw, policy=default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<m1@ailleurs.test>"
    assert parsed["References"].split() == ["<m0@cabinet.test>", "<m1@ailleurs.test>"]
    assert parsed["Subject"] == "Réponse automatique : Mes résultats de glycémie"
    assert parsed[auto_reply.MARKER] == "accuse"
    assert b"\r\n" in raw and b"MARQUEUR-CORPS" not in raw


def test_patient_subject_is_never_copied() -> None:
    for kind in Kind:
        absence = Absence(date(2025, 3, 10), date(2025, 3, 14)) if kind is Kind.ABSENCE else None
        raw = answer(kind, True, expected=date(2025, 3, 13), absence=absence)
        parsed = message_from_bytes(raw, policy=default)
        assert "glycémie" not in parsed["Subject"]
        assert parsed["Subject"] == "Réponse automatique : votre message au cabinet"
        assert "glycémie" not in parsed.get_content() and "MARQUEUR" not in parsed.get_content()


def test_urgent_answer_gives_every_emergency_number() -> None:
    text = message_from_bytes(answer(Kind.URGENT, True), policy=default).get_content()
    for number in ("15", "112", "114", "3114", "116 117"):
        assert f"  {number} : " in text
    assert "appelez les secours" in text and "call the emergency services" in text
    assert "Réponse attendue" not in text  # no delay promised for an emergency


def test_absence_names_the_replacement() -> None:
    absence = Absence(
        date(2025, 3, 10), date(2025, 3, 14), "Dr Paul Remplaçant", "remplacant@cabinet.test"
    )
    text = message_from_bytes(answer(Kind.ABSENCE, False, absence=absence), policy=default)
    content = text.get_content()
    assert "du 10/03/2025 au 14/03/2025" in content
    assert "Dr Paul Remplaçant <remplacant@cabinet.test>" in content
