"""Real IMAP clients against a real ``caducee serve`` process over TLS with the test CA:
Python's imaplib (append, flag, move, delete, idle, resync after another client's change) and
curl (imaps:// list and fetch, imap:// with STARTTLS)."""

from __future__ import annotations

import asyncio
import imaplib
import re
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def setup_mailbox(settings: Settings, count: int) -> str:
    async def go() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            for n in range(count):
                body = f"From: a@ailleurs.test\r\nSubject: CR {n}\r\n\r\nCompte rendu {n}\r\n"
                await deliver_local(app, body.encode(), [LOGIN])
            return await create_app_password(app, LOGIN, "clients")

    return asyncio.run(go())


def connect(port: int, context: ssl.SSLContext, password: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL("localhost", port, ssl_context=context, timeout=10)
    client.login(LOGIN, password)
    return client


def test_imaplib_and_curl(settings: Settings, tmp_path: Path) -> None:
    prepare(settings, {"imap": "127.0.0.1:0", "imaps": "127.0.0.1:0"})
    password = setup_mailbox(settings, 3)
    ca = settings.tls_dir / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca))
    with serve_process(settings, tmp_path) as proc:
        ports = {
            k: int(v.rsplit(":", 1)[1]) for k, v in wait_listeners(settings, proc, tmp_path).items()
        }
        # STARTTLS on 143-style port, then the usual client life.
        plain = imaplib.IMAP4("localhost", ports["imap"], timeout=10)
        assert "LOGINDISABLED" in plain.capabilities
        plain.starttls(context)
        plain.login(LOGIN, password)
        plain.logout()

        a = connect(ports["imaps"], context, password)
        b = connect(ports["imaps"], context, password)
        typ, data = a.select("INBOX")
        assert typ == "OK" and data == [b"3"]
        b.select("INBOX")
        typ, data = a.append(
            "INBOX",
            "(\\Seen)",
            imaplib.Time2Internaldate(time.time()),
            b"Subject: ajout\r\n\r\nx\r\n",
        )
        assert typ == "OK" and b"APPENDUID" in data[0]
        a.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
        typ, data = a.uid("MOVE", "2", "Archive")
        assert typ == "OK"
        # b sees a's changes on its next command
        typ, _ = b.noop()
        assert typ == "OK"
        untagged = dict(b.untagged_responses)
        # one moved away (EXPUNGE 2), one appended: 3 again
        assert untagged.get("EXPUNGE") == [b"2"] and untagged["EXISTS"][-1] == b"3"
        typ, data = b.uid("FETCH", "1", "(FLAGS)")
        assert b"\\Flagged" in data[0]
        # delete with \Deleted + EXPUNGE
        a.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
        a.expunge()
        typ, data = a.uid("SEARCH", None, "ALL")
        assert data[0].split() == [b"1", b"4"]
        # IDLE: another client's append wakes it within a second
        idler = connect(ports["imaps"], context, password)
        idler.select("INBOX")
        woken: list[str] = []

        def idle() -> None:
            tag = idler._new_tag()  # type: ignore[attr-defined]
            idler.send(tag + b" IDLE\r\n")
            assert idler.readline().startswith(b"+")
            woken.append(idler.readline().decode())
            idler.send(b"DONE\r\n")
            while not idler.readline().startswith(tag):
                pass

        thread = threading.Thread(target=idle)
        thread.start()
        time.sleep(0.3)
        start = time.monotonic()
        b.append("INBOX", None, None, b"Subject: reveil\r\n\r\nx\r\n")
        thread.join(5)
        assert woken and re.match(r"\* \d+ EXISTS", woken[0])
        assert time.monotonic() - start < 1.5
        # resync after another client's change, with CONDSTORE / QRESYNC
        typ, data = b.status("INBOX", "(HIGHESTMODSEQ UIDVALIDITY)")
        assert typ == "OK"
        for client in (a, b, idler):
            client.logout()

        listing = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                str(ca),
                "--user",
                f"{LOGIN}:{password}",
                f"imaps://localhost:{ports['imaps']}/",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        assert '"Archive"' in listing and "INBOX" in listing
        fetched = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--ssl-reqd",
                "--cacert",
                str(ca),
                "--user",
                f"{LOGIN}:{password}",
                f"imap://localhost:{ports['imap']}/Archive;UID=1",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        assert "Compte rendu 1" in fetched
        proc.terminate()
        proc.wait(10)
