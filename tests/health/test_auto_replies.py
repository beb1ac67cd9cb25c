"""Auto-replies (issue 16, RFC 3834) through the real pipeline, on both backends: the MX
(``flows.inbound.receive``), submissions between two local mailboxes, and the patient doors'
call (``after_delivery`` with a triage verdict). Replies to outside addresses are read from the
outbound queue, replies to our mailboxes from their Inbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest

from caducee.app import App
from caducee.domain.model import Account
from caducee.domain.triage import Triage
from caducee.flows import inbound, submission
from caducee.health import absences, auto_replies
from caducee.health.auto_replies import Channel
from caducee.services import queue
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from tests.dnsserver import LocalDNS
from tests.health.pickups import DOCTOR, PATIENT, Cabinet, cabinet, inbox
from tests.health.test_patients import verified
from tests.services.helpers import person
from tests.web.helpers import audit_dump

COLLEAGUE = "remplacant@cabinet.test"
OUTSIDE = "confrere@ailleurs.test"
MX_CLIENT = ClientInfo("192.0.2.10", "mx.ailleurs.test")
SUBMIT = ClientInfo("192.0.2.20", "laptop", login=DOCTOR, protocol="ESMTPSA")
#: Tuesday 11 March 2025, 10:00 in Paris (opening hours of the default charter).
TUESDAY_10H = datetime(2025, 3, 11, 9, 0, tzinfo=UTC)
#: Saturday 15 March 2025, 11:00 in Paris.
SATURDAY = datetime(2025, 3, 15, 10, 0, tzinfo=UTC)
PATIENT_SUBJECT = "Douleurs SUJET-SANTE-MARQUEUR"


@pytest.fixture
async def cab(app: App, test_dns: LocalDNS) -> Cabinet:
    app.settings.deployment = "development"
    app.settings.sms_provider = "fichier"
    return await cabinet(app)


async def colleague(app: App) -> Account:
    account, _ = await person(app, COLLEAGUE)
    return account


async def doctor(app: App) -> Account:
    from caducee.services import accounts

    return await accounts.get_account(app, DOCTOR)


async def set_absence(app: App, account: Account, replacement: str = "") -> None:
    today = absences.today()
    absence = await absences.check(
        app,
        account,
        starts=(today - timedelta(days=1)).isoformat(),
        ends=(today + timedelta(days=5)).isoformat(),
        replacement=replacement,
        message="Je consulte mes messages à mon retour.",
    )
    await absences.save(app, account, absence, actor=account.login, source="test")


def mail(
    sender: str,
    to: str = DOCTOR,
    subject: str = "Dossier de M. X",
    extra: str = "",
    message_id: str = "<m1@ailleurs.test>",
) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f"{extra}\r\nCorps CORPS-MARQUEUR\r\n"
    ).encode()


async def receive(app: App, sender: str, raw: bytes) -> None:
    await inbound.receive(app, Envelope(sender, (EnvelopeRecipient(DOCTOR),)), raw, MX_CLIENT)


async def replies(app: App) -> list[tuple[str, str, EmailMessage]]:
    """The queued auto-replies: (recipient, reverse-path, message)."""
    found = []
    for entry in await queue.list_queue(app):
        raw = await queue.read_content(app, entry)
        parsed = message_from_bytes(raw, policy=default)
        assert isinstance(parsed, EmailMessage)
        if parsed["Auto-Submitted"] == "auto-replied":
            found.append((entry.address, entry.mail_from, parsed))
    return found


async def test_absence_reply_names_the_replacement(app: App, cab: Cabinet) -> None:
    await colleague(app)
    await set_absence(app, await doctor(app), replacement=COLLEAGUE)
    await receive(app, OUTSIDE, mail(OUTSIDE))
    [(to, reverse_path, reply)] = await replies(app)
    assert to == OUTSIDE and reverse_path == ""  # RFC 3834 §3.3: the null reverse-path
    assert reply["From"] == DOCTOR
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<m1@ailleurs.test>"
    assert reply["Subject"] == "Réponse automatique : Dossier de M. X"
    text = reply.get_content()
    assert f"Jeanne Martin <{COLLEAGUE}>" in text
    assert "Je consulte mes messages à mon retour." in text
    assert "CORPS-MARQUEUR" not in text
    # the message itself is delivered, and the reply audited
    assert len(await inbox(app)) == 1
    dump = await audit_dump(app)
    assert "auto_reply.send" in dump and "absence.update" in dump
    assert OUTSIDE not in dump  # the answered address is not copied into the audit trail


@pytest.mark.parametrize(
    ("sender", "extra"),
    [
        (OUTSIDE, "Auto-Submitted: auto-replied\r\n"),
        (OUTSIDE, "Auto-Submitted: auto-generated\r\n"),
        (OUTSIDE, "List-Id: <cardio.listes.ailleurs.test>\r\n"),
        (OUTSIDE, "Precedence: bulk\r\n"),
        (OUTSIDE, "Precedence: junk\r\n"),
        ("", ""),
        ("MAILER-DAEMON@ailleurs.test", ""),
        ("postmaster@ailleurs.test", ""),
        ("noreply@ailleurs.test", ""),
        ("ne-pas-repondre@ailleurs.test", ""),
        ("owner-cardio@ailleurs.test", ""),
        ("cardio-request@ailleurs.test", ""),
        (OUTSIDE, f"X-Caducee-Auto-Reply: absence\r\nFrom: {OUTSIDE}\r\n"),
    ],
)
async def test_rfc3834_suppressions(app: App, cab: Cabinet, sender: str, extra: str) -> None:
    await set_absence(app, await doctor(app))
    await receive(app, sender, mail(sender or "MAILER-DAEMON@ailleurs.test", extra=extra))
    assert await replies(app) == []
    assert len(await inbox(app)) == 1  # delivered all the same


async def test_once_per_period_per_sender(app: App, cab: Cabinet) -> None:
    await set_absence(app, await doctor(app))
    await receive(app, OUTSIDE, mail(OUTSIDE, message_id="<a@ailleurs.test>"))
    await receive(app, OUTSIDE, mail(OUTSIDE, message_id="<b@ailleurs.test>"))
    await receive(app, "autre@ailleurs.test", mail("autre@ailleurs.test"))
    assert sorted(to for to, _, _ in await replies(app)) == ["autre@ailleurs.test", OUTSIDE]
    # after the period (4 days by default), the same sender is answered again
    raw = mail(OUTSIDE, message_id="<c@ailleurs.test>")
    stored = await deliver_local(app, raw, [DOCTOR], sender=OUTSIDE)
    later = datetime.now(UTC) + timedelta(days=4, minutes=1)
    await auto_replies.after_delivery(
        app, raw=raw, sender=OUTSIDE, stored=stored, channel=Channel.MAIL, now=later
    )
    assert [to for to, _, _ in await replies(app)].count(OUTSIDE) == 2
    # the sender is remembered as a keyed pseudonym, never in clear
    from sqlalchemy import select

    from caducee.store.tables import auto_reply_senders

    async with app.db.read() as conn:
        keys = list((await conn.scalars(select(auto_reply_senders.c.sender_key))).all())
    assert len(keys) == 2 and all(len(k) == 64 and "@" not in k for k in keys)


async def test_absent_colleagues_reply_to_each_other_at_most_once(app: App, cab: Cabinet) -> None:
    """The loop test of issue 16: two of our mailboxes, both absent, write to each other."""
    other = await colleague(app)
    await set_absence(app, await doctor(app), replacement=COLLEAGUE)
    await set_absence(app, other, replacement=DOCTOR)
    for n in range(3):
        await submission.submit(
            app,
            DOCTOR,
            Envelope(DOCTOR, (EnvelopeRecipient(COLLEAGUE),)),
            mail(DOCTOR, to=COLLEAGUE, message_id=f"<d{n}@cabinet.test>"),
            SUBMIT,
        )
        await submission.submit(
            app,
            COLLEAGUE,
            Envelope(COLLEAGUE, (EnvelopeRecipient(DOCTOR),)),
            mail(COLLEAGUE, to=DOCTOR, message_id=f"<c{n}@cabinet.test>"),
            ClientInfo("192.0.2.21", "laptop", login=COLLEAGUE, protocol="ESMTPSA"),
        )
    doctor_inbox = [message_from_bytes(m, policy=default) for m in await inbox(app)]
    colleague_inbox = [message_from_bytes(m, policy=default) for m in await inbox(app, COLLEAGUE)]
    auto_doctor = [m for m in doctor_inbox if m["Auto-Submitted"] == "auto-replied"]
    auto_colleague = [m for m in colleague_inbox if m["Auto-Submitted"] == "auto-replied"]
    assert len(auto_doctor) == 1 and len(auto_colleague) == 1
    assert auto_doctor[0]["From"] == COLLEAGUE and auto_colleague[0]["From"] == DOCTOR
    assert len(doctor_inbox) == 4 and len(colleague_inbox) == 4
    # The colleague's auto-reply reaching a Caducée MX (another server) is never answered.
    elsewhere = COLLEAGUE.replace("cabinet.test", "ailleurs.test")
    raw = (
        auto_doctor[0].as_bytes().split(b"\n", 1)[1].replace(COLLEAGUE.encode(), elsewhere.encode())
    )
    await receive(app, elsewhere, raw)
    assert await replies(app) == []


async def patient_message(
    app: App, cab: Cabinet, when: datetime, *, extra: str = "", message_id: str = "<p1@x.test>"
) -> None:
    raw = mail(PATIENT, subject=PATIENT_SUBJECT, extra=extra, message_id=message_id)
    stored = await deliver_local(app, raw, [DOCTOR], sender=PATIENT)
    patient = await auto_replies.patient_sender(app, cab.practice.id, PATIENT)
    await auto_replies.after_delivery(
        app, raw=raw, sender=PATIENT, stored=stored, channel=Channel.MAIL, patient=patient, now=when
    )


async def test_patient_first_message_gets_an_ack_with_the_expected_date(
    app: App, cab: Cabinet
) -> None:
    await verified(app, cab)
    await patient_message(app, cab, TUESDAY_10H)
    [(to, _, reply)] = await replies(app)
    assert to == PATIENT and reply["From"] == DOCTOR
    assert reply["Subject"] == "Réponse automatique : votre message au cabinet"
    text = reply.get_content()
    assert "SUJET-SANTE-MARQUEUR" not in reply.as_string() and "CORPS-MARQUEUR" not in text
    assert "Réponse attendue au plus tard le 13/03/2025." in text  # 2 working days
    assert "En cas d'urgence : 15 ou 112" in text  # the charter's short text
    assert "dehors des heures" not in text
    # five days later (past the period), a reply to our answer is no new conversation …
    later = TUESDAY_10H + timedelta(days=7)
    await patient_message(
        app, cab, later, extra=f"In-Reply-To: {reply['Message-ID']}\r\n", message_id="<p2@x.test>"
    )
    assert len(await replies(app)) == 1
    # … while a new message, not answering ours, opens one
    await patient_message(app, cab, later, message_id="<p3@x.test>")
    assert len(await replies(app)) == 2


async def test_patient_message_out_of_hours(app: App, cab: Cabinet) -> None:
    await verified(app, cab)
    await patient_message(app, cab, SATURDAY)
    [(_, _, reply)] = await replies(app)
    text = reply.get_content()
    assert "en dehors des heures d'ouverture" in text
    assert "Réponse attendue au plus tard le 19/03/2025." in text  # Monday + 2 working days


async def test_not_a_patient_gets_no_ack(app: App, cab: Cabinet) -> None:
    await patient_message(app, cab, SATURDAY)  # the registry does not know the sender
    assert await replies(app) == []


async def test_urgent_reply_whatever_the_hour_and_within_the_period(app: App, cab: Cabinet) -> None:
    await verified(app, cab)
    await patient_message(app, cab, TUESDAY_10H)  # an ack: the sender is now in the period
    raw = mail(PATIENT, subject=PATIENT_SUBJECT, message_id="<urgent@x.test>")
    stored = await deliver_local(app, raw, [DOCTOR], sender=PATIENT)
    night = datetime(2025, 3, 16, 2, 30, tzinfo=UTC)  # Sunday, 3:30 in Paris
    urgent = Triage("conseil", True)
    for _ in range(2):  # the same message twice: one answer
        await auto_replies.after_delivery(
            app,
            raw=raw,
            sender=PATIENT,
            stored=stored,
            channel=Channel.MAIL,
            triage=urgent,
            patient=True,
            now=night,
        )
    answers = await replies(app)
    assert len(answers) == 2
    text = answers[1][2].get_content()
    for number in ("15", "112", "114", "3114", "116 117"):
        assert f"  {number} : " in text
    assert "SUJET-SANTE-MARQUEUR" not in answers[1][2].as_string()


async def test_out_of_scope_reply_points_to_a_consultation(app: App, cab: Cabinet) -> None:
    await verified(app, cab)
    raw = mail(PATIENT, subject=PATIENT_SUBJECT)
    stored = await deliver_local(app, raw, [DOCTOR], sender=PATIENT)
    await auto_replies.after_delivery(
        app,
        raw=raw,
        sender=PATIENT,
        stored=stored,
        channel=Channel.PORTAL,
        triage=Triage("hors-champ", False, scores={"hors-champ": 2.0}),
        now=TUESDAY_10H,
    )
    [(to, _, reply)] = await replies(app)
    assert to == PATIENT and "demande une consultation" in reply.get_content()
    assert len(await inbox(app)) == 1  # delivered, never hidden


async def test_unplaced_message_is_not_told_to_book_a_consultation(app: App, cab: Cabinet) -> None:
    """« hors-champ » chosen only because no cue spoke: an ordinary acknowledgement."""
    await verified(app, cab)
    raw = mail(PATIENT, subject=PATIENT_SUBJECT)
    stored = await deliver_local(app, raw, [DOCTOR], sender=PATIENT)
    await auto_replies.after_delivery(
        app,
        raw=raw,
        sender=PATIENT,
        stored=stored,
        channel=Channel.PORTAL,
        triage=Triage("hors-champ", False, scores={"hors-champ": 0.0, "conseil": 0.0}),
        now=TUESDAY_10H,
    )
    [(_, _, reply)] = await replies(app)
    assert reply[auto_replies.auto_reply.MARKER] == "accuse"


async def test_mx_patient_is_recognised_and_acknowledged(app: App, cab: Cabinet) -> None:
    await verified(app, cab)
    await receive(app, PATIENT, mail(PATIENT, subject=PATIENT_SUBJECT))
    [(to, _, reply)] = await replies(app)
    # The MX classifies the patient's message (« Douleurs … »: a new complaint, out of what
    # mail handles): the reply points to a consultation rather than a plain acknowledgement.
    assert to == PATIENT and reply[auto_replies.auto_reply.MARKER] == "hors-champ"
    assert "SUJET-SANTE-MARQUEUR" not in reply.as_string()
