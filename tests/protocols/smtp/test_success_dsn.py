"""RFC 3461 NOTIFY=SUCCESS on local delivery: a « delivered » report (RFC 3464) goes back to
the sender — into their Inbox when they are ours, queued to them otherwise."""

from __future__ import annotations

from email import message_from_bytes, policy

from caducee.services import queue
from tests.protocols.smtp.conftest import LOGIN, OTHER, SmtpServer, transcript
from tests.protocols.smtp.helpers import stored_messages


def _report_fields(raw: bytes) -> tuple[str, str]:
    report = message_from_bytes(raw, policy=policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    [status] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    text = status.as_bytes().decode()
    return str(report["Subject"]), text


async def test_submission_to_a_local_colleague_with_notify_success(server: SmtpServer) -> None:
    client = await server.submitter()
    await transcript(
        client,
        f"""
        C: MAIL FROM:<{LOGIN}> ENVID=dossier-42
        C: RCPT TO:<{OTHER}> NOTIFY=SUCCESS ORCPT=rfc822;{OTHER}
        C: DATA
        S: 250 2.1.0 *
        S: 250 2.1.5 *
        S: 354 *
        C: From: {LOGIN}
        C: To: {OTHER}
        C: Subject: Compte rendu
        C:
        C: corps confidentiel
        C: .
        S: 250 2.0.0 Message accepte / Message accepted
        """,
    )
    stored = await stored_messages(server.app)
    assert len(stored) == 2  # the colleague's copy, then the report in the sender's Inbox
    subject, status = _report_fields(stored[1])
    assert "remis" in subject.lower() or "delivered" in subject.lower()
    assert "Action: delivered" in status and "Status: 2.0.0" in status
    assert f"Final-Recipient: rfc822; {OTHER}" in status
    assert f"Original-Recipient: rfc822; {OTHER}" in status, status
    assert "Original-Envelope-Id: dossier-42" in status
    assert b"corps confidentiel" not in stored[1]  # RET=HDRS by default: headers only


async def test_no_report_without_notify_success(server: SmtpServer) -> None:
    client = await server.submitter()
    body = f"From: {LOGIN}\r\nSubject: x\r\n\r\ncorps\r\n".encode()
    reply = await client.send_message(LOGIN, [OTHER], body)
    assert reply.startswith("250")
    assert len(await stored_messages(server.app)) == 1


async def test_mx_delivery_reports_success_to_a_remote_sender(server: SmtpServer) -> None:
    client = await server.client("smtp")
    await client.command("EHLO mx.ailleurs.test")
    await transcript(
        client,
        f"""
        C: MAIL FROM:<a@ailleurs.test> RET=HDRS
        C: RCPT TO:<{LOGIN}> NOTIFY=SUCCESS,FAILURE
        C: DATA
        S: 250 2.1.0 *
        S: 250 2.1.5 *
        S: 354 *
        C: From: a@ailleurs.test
        C: Subject: Demande d'avis
        C:
        C: corps
        C: .
        S: 250 2.0.0 Message accepte / Message accepted
        """,
    )
    [row] = await queue.list_queue(server.app)
    assert row.mail_from == ""  # a report travels with the null reverse-path
    assert row.address == "a@ailleurs.test"
