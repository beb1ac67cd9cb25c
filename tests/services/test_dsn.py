"""RFC 3464 delivery reports: built by services.dsn, parsed back with the email package."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import Message

from caducee.services.dsn import (
    RecipientStatus,
    Report,
    build_dsn,
    header_block,
    xtext_decode,
    xtext_encode,
)

ORIGINAL = (
    b"From: Dr Martin <dr.martin@cabinet.test>\r\n"
    b"To: confrere@partner.test\r\n"
    b"Subject: Compte rendu\r\n"
    b"Message-ID: <abc@cabinet.test>\r\n"
    b"\r\n"
    b"Patient SECRET-BODY : HbA1c 7,2 %\r\n"
)
ARRIVAL = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
NOW = ARRIVAL + timedelta(hours=5)


def report(**changes: object) -> Report:
    values: dict[str, object] = {
        "reporting_mta": "mail.cabinet.test",
        "sender": "dr.martin@cabinet.test",
        "original": ORIGINAL,
        "recipients": [
            RecipientStatus(
                final_recipient="confrere@partner.test",
                action="failed",
                status="5.1.1",
                original_recipient="rfc822;Confrere+2Bx@partner.test",
                remote_mta="mx.partner.test",
                smtp_code=550,
                diagnostic="5.1.1 <confrere@partner.test>: utilisateur inconnu",
                last_attempt=NOW,
            ),
            RecipientStatus(
                final_recipient="autre@partner.test",
                action="delayed",
                status="4.4.1",
                diagnostic="connexion impossible / cannot connect",
                last_attempt=NOW,
                will_retry_until=ARRIVAL + timedelta(days=5),
            ),
        ],
        "arrival": ARRIVAL,
        "envid": "QID-42",
        "ret": None,
        "queue_id": 42,
    }
    values.update(changes)
    return Report(**values)  # type: ignore[arg-type]


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_report_structure_and_every_field() -> None:
    raw = build_dsn(report(), now=NOW)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert str(msg["From"]) == "Système de messagerie Caducée <MAILER-DAEMON@cabinet.test>"
    assert str(msg["To"]) == "dr.martin@cabinet.test"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert str(msg["Subject"]).startswith("Non remis")
    assert msg["Message-ID"] and msg["Date"]

    human, status, original = msg.get_payload()  # type: ignore[misc]
    # 1. French first, then English
    assert human.get_content_type() == "text/plain"
    text = human.get_content()
    assert text.index("Ceci est le système de messagerie Caducée") < text.index("--- English ---")
    assert "n'a pas pu être remis" in text and "could not be delivered" in text
    assert "550 5.1.1 <confrere@partner.test>: utilisateur inconnu (mx.partner.test)" in text
    assert "Nouvelles tentatives jusqu'au" in text and "Retrying until 2026-12-06" in text

    # 2. message/delivery-status: per-message fields, then one block per recipient
    assert status.get_content_type() == "message/delivery-status"
    blocks = status.get_payload()
    assert len(blocks) == 3
    per_message, first, second = blocks
    assert per_message["Reporting-MTA"] == "dns; mail.cabinet.test"
    assert per_message["Original-Envelope-Id"] == "QID-42"
    assert per_message["X-Caducee-Queue-ID"] == "42"
    assert per_message["Arrival-Date"] == "Tue, 01 Dec 2026 09:30:00 +0000"
    assert first["Original-Recipient"] == "rfc822; Confrere+x@partner.test"  # xtext decoded
    assert first["Final-Recipient"] == "rfc822; confrere@partner.test"
    assert first["Action"] == "failed"
    assert first["Status"] == "5.1.1"
    assert first["Remote-MTA"] == "dns; mx.partner.test"
    assert first["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <confrere@partner.test>: utilisateur inconnu"
    )
    assert first["Last-Attempt-Date"] == "Tue, 01 Dec 2026 14:30:00 +0000"
    assert first["Will-Retry-Until"] is None
    assert second["Final-Recipient"] == "rfc822; autre@partner.test"
    assert second["Original-Recipient"] is None and second["Remote-MTA"] is None
    assert second["Action"] == "delayed" and second["Status"] == "4.4.1"
    # our own diagnostics are not SMTP replies, and accents are folded to ASCII
    assert second["Diagnostic-Code"] == "X-Caducee; connexion impossible / cannot connect"
    assert second["Will-Retry-Until"] == "Sun, 06 Dec 2026 09:30:00 +0000"

    # 3. headers only by default: the body of a health message never comes back
    assert original.get_content_type() == "text/rfc822-headers"
    assert b"SECRET-BODY" not in raw
    assert b"Subject: Compte rendu" in raw and b"Message-ID: <abc@cabinet.test>" in raw


def test_ret_full_returns_the_whole_message() -> None:
    msg = parse(build_dsn(report(ret="FULL"), now=NOW))
    attached = msg.get_payload()[2]  # type: ignore[index]
    assert attached.get_content_type() == "message/rfc822"
    inner = attached.get_payload()[0]
    assert inner["Subject"] == "Compte rendu"
    assert "SECRET-BODY" in inner.get_content()
    assert "joint en entier" in msg.get_payload()[0].get_content()  # type: ignore[index]


def test_ret_full_too_large_falls_back_to_headers() -> None:
    big = ORIGINAL + b"x" * 200_000 + b"\r\n"
    msg = parse(build_dsn(report(ret="FULL", original=big, max_bytes=100_000), now=NOW))
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"  # type: ignore[index]


def test_single_delay_notice_subject_and_no_envid() -> None:
    delayed = RecipientStatus("a@partner.test", "delayed", "4.0.0", last_attempt=NOW)
    msg = parse(build_dsn(report(recipients=[delayed], envid=None), now=NOW))
    assert str(msg["Subject"]).startswith("Remise retardée")
    per_message = msg.get_payload()[1].get_payload()[0]  # type: ignore[index]
    assert per_message["Original-Envelope-Id"] is None


def test_xtext_round_trip() -> None:
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext_decode("a+2Bb+3Dc+20d") == "a+b=c d"
    assert xtext_decode(xtext_encode("Éric")) == "Éric"
    assert xtext_decode("plain") == "plain"


def test_header_block() -> None:
    assert header_block(b"A: 1\r\nB: 2\r\n\r\nbody") == b"A: 1\r\nB: 2\r\n"
    assert header_block(b"A: 1\n\nbody") == b"A: 1\n"
    assert header_block(b"A: 1") == b"A: 1\r\n"
