"""Lots and returns pass byte for byte, through a real ``caducee serve`` process and real clients.

Billing software submits a real S/MIME enveloped lot over SMTP submission (Python ``smtplib``,
STARTTLS, an app password); a local stand-in fund server (aiosmtpd, reached by a static route)
must receive exactly the submitted bytes after the headers we prepend. A return sent to our MX is
read back over POP3 (``RETR``, ``poplib``) and IMAP (``BODY[]``, ``imaplib``): the same bytes
after the prepended trace headers, and ``LIST`` says exactly how many octets ``RETR`` sends.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import smtplib
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings, TransportRoute
from caducee.domain.model import MailboxType
from caducee.domain.teletransmission import LotState
from caducee.health import teletransmission
from caducee.services import mailboxes
from caducee.services.app_passwords import create_app_password
from tests.dnsserver import LocalDNS
from tests.health import tlt as traffic
from tests.interop.test_outbound import Peer, Peers
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

OWNER = "dr@cabinet.test"
TLT = "tlt.dr@cabinet.test"
FUND_DOMAIN = traffic.FUND.split("@")[1]


@pytest.fixture
def fund() -> Iterator[Peer]:
    peers = Peers()
    try:
        yield peers.start()
    finally:
        for controller in peers.controllers:
            controller.stop()


def setup(settings: Settings) -> str:
    async def go() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, OWNER)
            await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, OWNER)
            return await create_app_password(app, TLT, "Logiciel de facturation")

    return asyncio.run(go())


def lot_views(settings: Settings) -> list[teletransmission.LotView]:
    async def go() -> list[teletransmission.LotView]:
        async with open_app(settings) as app:
            boxes = await teletransmission.resolve_mailboxes(app, OWNER, TLT)
            return await teletransmission.list_lots(app, boxes)

    return asyncio.run(go())


def prepended_headers_only(prefix: bytes) -> list[bytes]:
    """The names of the header fields in ``prefix``, which must be whole header lines."""
    assert prefix.endswith(b"\r\n") or not prefix
    names = []
    for line in prefix.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation
        name, colon, _ = line.partition(b":")
        assert colon and name and b" " not in name, line
        names.append(name.lower())
    return names


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail("timed out")


def test_lot_and_return_pass_byte_for_byte(
    settings: Settings, tmp_path: Path, fund: Peer, test_dns: LocalDNS
) -> None:
    settings.transport = {FUND_DOMAIN: TransportRoute("127.0.0.1", fund.port, "opportunistic")}
    prepare(
        settings,
        {
            "smtp": "127.0.0.1:0",
            "submission": "127.0.0.1:0",
            "pop3": "127.0.0.1:0",
            "imap": "127.0.0.1:0",
        },
    )
    password = setup(settings)
    test_dns.add(FUND_DOMAIN, "TXT", "v=spf1 ip4:127.0.0.1 -all")
    context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    number = traffic.compostage(datetime.now(UTC))
    lot = traffic.lot_message(TLT, subject=traffic.lot_subject(traffic.SENDER_NUMBER, number))
    with serve_process(settings, tmp_path) as proc:
        ports = {
            k: int(v.rsplit(":", 1)[1]) for k, v in wait_listeners(settings, proc, tmp_path).items()
        }
        # 1. The billing software sends its lot with the TLT mailbox's own app password.
        with smtplib.SMTP("localhost", ports["submission"], timeout=20) as client:
            client.starttls(context=context)
            client.login(TLT, password)
            client.sendmail(TLT, [traffic.FUND], lot)
        wait_for(lambda: fund.received)
        [received] = fund.received
        assert received.rcpt_tos == [traffic.FUND]
        assert received.content.endswith(lot)
        names = prepended_headers_only(received.content[: -len(lot)])
        assert b"received" in names
        wait_for(lambda: lot_views(settings)[0].lot.delivery == "delivered")

        # 2. The fund's ARL reaches our MX and is read back over POP3 and IMAP.
        answer = traffic.arl(TLT, traffic.SENDER_NUMBER, number, positive=True)
        with smtplib.SMTP("localhost", ports["smtp"], timeout=20) as mx:
            mx.ehlo("mx.422.01.rss.fr")
            mx.sendmail(traffic.FUND, [TLT], answer)
        pop = poplib.POP3("localhost", ports["pop3"], timeout=20)
        try:
            pop.stls(context)
            pop.user(TLT)
            pop.pass_(password)
            _, listing, _ = pop.list()
            [entry] = listing
            size = int(entry.split()[1])
            _, lines, _ = pop.retr(1)
            body = b"\r\n".join(lines) + b"\r\n"
            assert size == len(body)
            assert body.endswith(answer)
            assert b"return-path" in prepended_headers_only(body[: -len(answer)])
            # The lot is not to be deleted before 90 days: the server refuses.
            with pytest.raises(poplib.error_proto):
                pop.dele(1)
        finally:
            pop.quit()
        imap = imaplib.IMAP4("localhost", ports["imap"], timeout=20)
        try:
            imap.starttls(context)
            imap.login(TLT, password)
            imap.select("INBOX", readonly=True)
            _, data = imap.fetch("1", "(BODY.PEEK[])")
            fetched = data[0][1]  # type: ignore[index]
            assert isinstance(fetched, bytes) and fetched == body
            imap.select("Sent", readonly=True)
            _, data = imap.fetch("1", "(BODY.PEEK[])")
            kept = data[0][1]  # type: ignore[index]
            assert isinstance(kept, bytes) and kept.endswith(lot)
        finally:
            imap.logout()
    [view] = lot_views(settings)
    assert view.state is LotState.ARL_POSITIVE
