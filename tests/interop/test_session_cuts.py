"""Disabling or deleting an account or a mailbox cuts its open IMAP (IDLE included) and POP3
sessions at once, on every worker of a real ``caducee serve`` (two worker processes), from the
command line — a third process: PostgreSQL NOTIFY, or SQLite's datagrams between the node's
processes (services.events). IMAP says ``* BYE`` (RFC 9051 §7.1.5) in French and closes; POP3
says why and closes. Nothing waits on a clock: each client blocks on its socket until the
server speaks (the socket timeout only bounds a failure)."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import MailboxType, Role
from caducee.services import mailboxes
from caducee.services.app_passwords import create_app_password
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners

OWNER = "dr@cabinet.test"
ADMIN = "admin@cabinet.test"
SHARED = "accueil@cabinet.test"
BYE = b"* BYE acces desactive ou supprime par l'administrateur du cabinet"


@dataclass
class Server:
    settings: Settings
    ports: dict[str, int]
    owner_password: str
    shared_password: str

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def imap(self, login: str, password: str, folder: str = "INBOX") -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "localhost", self.ports["imaps"], ssl_context=self.context(), timeout=30
        )
        client.login(login, password)
        assert client.select(folder)[0] == "OK"
        return client

    def pop3(self, login: str, password: str) -> poplib.POP3_SSL:
        client = poplib.POP3_SSL(
            "localhost", self.ports["pop3s"], context=self.context(), timeout=30
        )
        client.user(login)
        client.pass_(password)
        return client


def caducee(settings: Settings, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "caducee", *args, "--data", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    settings.hostname = "localhost"
    prepare(settings, {"imaps": "127.0.0.1:0", "pop3s": "127.0.0.1:0"}, workers=2)

    async def setup() -> tuple[str, str]:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, OWNER)
            await person(app, ADMIN, Role.ADMIN)
            await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
            return (
                await create_app_password(app, OWNER, "Thunderbird"),
                await create_app_password(app, SHARED, "Accueil"),
            )

    owner_password, shared_password = asyncio.run(setup())
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path, timeout=120)  # a loaded machine
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield Server(settings, ports, owner_password, shared_password)
        proc.terminate()
        proc.wait(15)


def idle(client: imaplib.IMAP4_SSL) -> None:
    tag = client._new_tag()  # type: ignore[attr-defined]
    client.send(tag + b" IDLE\r\n")
    assert client.readline().startswith(b"+")


def cut_imap(client: imaplib.IMAP4_SSL) -> None:
    """The server's next words are the BYE, then it closes."""
    assert client.readline().startswith(BYE)
    assert client.readline() == b""
    client.shutdown()


def cut_pop3(client: poplib.POP3_SSL) -> None:
    line = client.file.readline()
    assert line.startswith(b"-ERR acces desactive ou supprime"), line
    assert client.file.readline() == b""
    client.close()


def test_disabling_an_account_cuts_its_sessions_on_every_worker(server: Server) -> None:
    # Several sessions: the kernel spreads them over the two workers.
    idlers = [server.imap(OWNER, server.owner_password) for _ in range(3)]
    for client in idlers:
        idle(client)
    waiting = [server.imap(OWNER, server.owner_password) for _ in range(2)]
    # A mailbox login of a mailbox the account owns depends on the account: cut too.
    by_mailbox = server.imap(SHARED, server.shared_password)
    pop = server.pop3(OWNER, server.owner_password)

    caducee(server.settings, "user", "disable", OWNER)

    for client in [*idlers, *waiting, by_mailbox]:
        cut_imap(client)
    cut_pop3(pop)


def test_disabling_or_deleting_a_mailbox_cuts_the_sessions_that_have_it_open(
    server: Server,
) -> None:
    on_shared = server.imap(OWNER, server.owner_password, folder=f'"Partag&AOk-s/{SHARED}/INBOX"')
    idle(on_shared)
    own_login = server.imap(SHARED, server.shared_password)
    pop = server.pop3(SHARED, server.shared_password)
    on_inbox = server.imap(OWNER, server.owner_password)  # the owner's own Inbox: untouched

    caducee(server.settings, "mailbox", "disable", SHARED)

    cut_imap(on_shared)
    cut_imap(own_login)
    cut_pop3(pop)
    assert on_inbox.noop()[0] == "OK"

    caducee(server.settings, "mailbox", "enable", SHARED)
    again = server.imap(SHARED, server.shared_password)
    idle(again)
    caducee(server.settings, "mailbox", "delete", SHARED, "--yes")
    cut_imap(again)
    assert on_inbox.noop()[0] == "OK"
    on_inbox.logout()
