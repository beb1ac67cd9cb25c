"""A mailbox of an MSSanté domain writes only inside the trust space (submission service, both
backends); TLT mailboxes and domains outside the trust space keep ordinary rules."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.errors import InvalidInput, PolicyRejected
from caducee.flows import submission
from caducee.health import trust_list
from caducee.services import mailboxes, queue
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.services.helpers import person, practice

CLIENT = ClientInfo(ip="192.0.2.10", helo="poste", tls="TLSv1.3 X", login="x", protocol="ESMTPSA")
OURS = "cabinet.mssante.test"
PEER = "chu.mssante.test"


def _mail(sender: str, to: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Compte rendu\r\n"
        "Message-ID: <m1@cabinet>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0100\r\n\r\nTexte\r\n"
    ).encode()


async def _send(app: App, login: str, sender: str, to: str) -> None:
    envelope = Envelope(sender, (EnvelopeRecipient(to),))
    await submission.submit(app, login, envelope, _mail(sender, to), CLIENT)


@pytest.fixture
async def listed(app: App) -> App:
    await practice(app, OURS)
    await person(app, f"dr.a@{OURS}")
    await trust_list.import_whitelist(
        app, whitelist_xml([(OURS, operator_dn(1)), (PEER, operator_dn(2))])
    )
    return app


async def test_trust_space_mailbox_writes_inside_only(listed: App) -> None:
    sender = f"dr.a@{OURS}"
    await _send(listed, sender, sender, f"confrere@{PEER}")
    assert [e.address for e in await queue.list_queue(listed)] == [f"confrere@{PEER}"]
    with pytest.raises(PolicyRejected) as refused:
        await _send(listed, sender, sender, "patient@gmail.test")
    assert "espace de confiance MSSanté" in refused.value.fr
    assert "patient@gmail.test" in refused.value.fr and "canal patient" in refused.value.fr
    with pytest.raises(PolicyRejected):
        await submission.check_submission_recipient(listed, "patient@gmail.test", {OURS}, sender)
    assert len(await queue.list_queue(listed)) == 1  # nothing queued for the refused message


async def test_teletransmission_mailbox_is_not_bound_to_the_trust_space(listed: App) -> None:
    """A TLT mailbox on a listed domain writes to the insurers outside the trust space (its
    own rule, health.insurers), without the MSSanté header."""
    await mailboxes.add_mailbox(listed, f"tlt@{OURS}", MailboxType.TLT, f"dr.a@{OURS}")
    await _send(listed, f"dr.a@{OURS}", f"tlt@{OURS}", "01422@422.01.rss.fr")
    [entry] = [e for e in await queue.list_queue(listed) if e.address == "01422@422.01.rss.fr"]
    assert b"X-MSS-NIL" not in await queue.read_content(listed, entry)


async def test_domain_outside_the_trust_space_keeps_ordinary_rules(app: App) -> None:
    await practice(app, "cabinet.test")
    await person(app, "dr.b@cabinet.test")
    await trust_list.import_whitelist(app, whitelist_xml([(PEER, operator_dn(2))]))
    await _send(app, "dr.b@cabinet.test", "dr.b@cabinet.test", "patient@gmail.test")
    assert [e.address for e in await queue.list_queue(app)] == ["patient@gmail.test"]


async def test_trust_space_mail_carries_x_mss_nil(listed: App) -> None:
    sender = f"dr.a@{OURS}"
    listed.settings.mssante_product = "Caducee 0.1 (test)"
    await _send(listed, sender, sender, f"confrere@{PEER}")
    [entry] = await queue.list_queue(listed)
    raw = await queue.read_content(listed, entry)
    assert b"\r\nX-MSS-NIL: Caducee 0.1 (test)\r\n" in raw


async def test_x_mss_mes_takes_only_fin(listed: App) -> None:
    sender = f"dr.a@{OURS}"
    for value, accepted in (("FIN", True), ("fin", True), ("AUTRE", False)):
        raw = _mail(sender, f"confrere@{PEER}").replace(
            b"Subject:", f"X-MSS-MES: {value}\r\nSubject:".encode()
        )
        envelope = Envelope(sender, (EnvelopeRecipient(f"confrere@{PEER}"),))
        if accepted:
            await submission.submit(listed, sender, envelope, raw, CLIENT)
        else:
            with pytest.raises(InvalidInput, match="X-MSS-MES"):
                await submission.submit(listed, sender, envelope, raw, CLIENT)
