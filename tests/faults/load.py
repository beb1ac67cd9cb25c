"""What the fault tests share: a node of real processes, an SMTP load over several connections
that remembers exactly which messages got a ``250``, and the read-back over IMAP.

A message counts as acknowledged only when ``sendmail`` returned: a connection cut after the
final dot leaves it unknown (it may have been stored; it must then be whole, and once).
"""

from __future__ import annotations

import asyncio
import hashlib
import imaplib
import re
import smtplib
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from caducee.app import open_app
from caducee.config import Settings
from caducee.server import listeners_file
from caducee.services.app_passwords import create_app_password
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
EXTERNAL = "a@ailleurs.test"
LISTENERS = {"smtp": "127.0.0.1:0", "imaps": "127.0.0.1:0"}
TIMEOUT = 30.0
STARTUP_TIMEOUT = 180.0
#: Every this many messages, one is larger than the blob store's inline limit (100 KiB): a
#: file staged before the commit, which a crash may leave behind.
LARGE_EVERY = 5


@dataclass
class Node:
    settings: Settings
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    tmp: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))


def setup_account(settings: Settings, workers: int) -> str:
    """A data dir ready to serve :data:`LISTENERS`, with the practice, ``LOGIN`` and an app
    password (returned)."""
    prepare(settings, LISTENERS, workers=workers)

    async def go() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            return await create_app_password(app, LOGIN, "faults")

    return asyncio.run(go())


@contextmanager
def running(settings: Settings, tmp: Path) -> Iterator[Node]:
    tmp.mkdir(parents=True, exist_ok=True)
    # A node killed left its listeners.json: the new one rewrites it once its ports are bound.
    listeners_file(settings).unlink(missing_ok=True)
    with serve_process(settings, tmp) as proc:
        bound = wait_listeners(settings, proc, tmp, timeout=STARTUP_TIMEOUT)
        yield Node(settings, proc, {k: int(v.rsplit(":", 1)[1]) for k, v in bound.items()}, tmp)


def message(subject: str, number: int) -> bytes:
    size = 150_000 if number % LARGE_EVERY == 0 else 4_000
    line = (hashlib.sha256(subject.encode()).hexdigest() + "\r\n").encode()
    body = line * (size // len(line))
    head = (
        f"From: {EXTERNAL}\r\nTo: {LOGIN}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@ailleurs.test>\r\n\r\n"
    ).encode()
    return head + body


@dataclass
class Load:
    """``connections`` SMTP clients sending to ``LOGIN`` through the MX port until stopped."""

    port: int
    context: ssl.SSLContext
    connections: int = 4
    acknowledged: dict[str, bytes] = field(default_factory=dict)
    sent: dict[str, bytes] = field(default_factory=dict)  # everything whose DATA was sent
    replies: list[tuple[float, int, str]] = field(
        default_factory=list
    )  # refusals: (when, code, text)
    cut: int = 0  # connections lost or refused
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for index in range(self.connections):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, index: int) -> None:
        number = 0
        while not self.stop.is_set():
            try:
                with smtplib.SMTP(
                    "127.0.0.1", self.port, local_hostname="mx.ailleurs.test", timeout=TIMEOUT
                ) as mx:
                    mx.starttls(context=self.context)
                    while not self.stop.is_set():
                        number += 1
                        subject = f"load-{index}-{number}"
                        raw = message(subject, number)
                        with self._lock:
                            self.sent[subject] = raw
                        try:
                            mx.sendmail(EXTERNAL, [LOGIN], raw)
                        except smtplib.SMTPRecipientsRefused as refused_all:
                            with self._lock:
                                for code, reply in refused_all.recipients.values():
                                    text = reply.decode("utf-8", "replace")
                                    self.replies.append((time.monotonic(), code, text))
                            mx.rset()
                            continue
                        except smtplib.SMTPResponseException as refused:
                            text = refused.smtp_error.decode("utf-8", "replace")
                            with self._lock:
                                self.replies.append((time.monotonic(), refused.smtp_code, text))
                            if refused.smtp_code == 421:
                                break
                            mx.rset()
                            continue
                        with self._lock:
                            self.acknowledged[subject] = raw
            except (OSError, smtplib.SMTPException):
                with self._lock:
                    self.cut += 1
                self.stop.wait(0.2)  # the node is down or restarting: try again shortly

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait_for(self, acknowledged: int, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < acknowledged:
            assert time.monotonic() < deadline, f"only {self.count()} acknowledged"
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)


def imap_client(node: Node, password: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(
        "localhost", node.ports["imaps"], ssl_context=node.context(), timeout=TIMEOUT
    )
    client.login(LOGIN, password)
    return client


def read_back(
    node: Node, password: str, session: imaplib.IMAP4_SSL | None = None
) -> dict[str, list[bytes]]:
    """Every message of the Inbox, by subject (a list: a message stored twice shows twice),
    through ``session`` (left open) or a new one."""
    client = session or imap_client(node, password)
    try:
        client.select("INBOX", readonly=True)
        found: dict[str, list[bytes]] = {}
        _, data = client.uid("SEARCH", "ALL")
        uids = data[0].split() if data and data[0] else []
        for start in range(0, len(uids), 50):
            batch = b",".join(uids[start : start + 50]).decode()
            _, fetched = client.uid("FETCH", batch, "(BODY.PEEK[])")
            for item in fetched:
                if not isinstance(item, tuple):
                    continue
                raw = item[1]
                subject = re.search(rb"^Subject: (\S+)\r$", raw, re.M)
                assert subject, raw[:300]
                found.setdefault(subject.group(1).decode(), []).append(raw)
        return found
    finally:
        if session is None:
            client.logout()


def check_read_back(load: Load, found: dict[str, list[bytes]]) -> None:
    """Every acknowledged message is there, once and whole; anything else there was sent (its
    ``250`` lost with the connection) and is whole and once too."""
    missing = sorted(set(load.acknowledged) - set(found))
    assert not missing, f"{len(missing)} acknowledged messages lost: {missing[:5]}"
    twice = sorted(subject for subject, copies in found.items() if len(copies) > 1)
    assert not twice, f"stored twice: {twice[:5]}"
    for subject, [raw] in found.items():
        sent = load.sent.get(subject)
        assert sent is not None, f"a message nobody sent: {subject}"
        # The MX prepends its trace headers; the rest is the exact bytes sent.
        assert raw.endswith(sent), f"{subject} stored incomplete ({len(raw)} bytes)"


def audit_verify(settings: Settings, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``caducee audit verify`` of ``settings``' installation, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "caducee", "audit", "verify", "--data", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
    )


def until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
