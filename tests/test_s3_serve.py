"""A real ``caducee serve`` on the S3 blob store (issue 20), on both metadata backends: mail
delivered over SMTP is read back over IMAP byte for byte (big messages too) from a local S3
server (moto's, over HTTP); the object store going away during an SMTP load gives clients
``451 4.3.0`` and IMAP ``NO [UNAVAILABLE]``, never a crash, and once it is back every message
that got a ``250`` is there, once.

Phases are driven by what the clients saw (so many acknowledged, so many refused), never by
how long something took.
"""

from __future__ import annotations

import base64
import hashlib
import imaplib
import os
import poplib
import re
import signal
import smtplib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from caducee.config import Settings, load_settings
from caducee.store import s3_blobs
from tests.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, LocalS3, local_s3, use_s3
from tests.serving import prepare, serve_process, stderr_of, wait_listeners
from tests.test_backup import caducee, new_database
from tests.test_workers import EXTERNAL, LOGIN, setup_account, until

TIMEOUT = 60.0
LISTENERS = {"smtp": "127.0.0.1:0", "imaps": "127.0.0.1:0", "pop3s": "127.0.0.1:0"}


@dataclass
class S3Node:
    settings: Settings
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    password: str
    tmp: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def imap(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "localhost", self.ports["imaps"], ssl_context=self.context(), timeout=TIMEOUT
        )
        client.login(LOGIN, self.password)
        return client

    def pop3(self) -> poplib.POP3_SSL:
        client = poplib.POP3_SSL(
            "localhost", self.ports["pop3s"], context=self.context(), timeout=TIMEOUT
        )
        client.user(LOGIN)
        client.pass_(self.password)
        return client

    @contextmanager
    def mx(self) -> Iterator[smtplib.SMTP]:
        with smtplib.SMTP(
            "127.0.0.1", self.ports["smtp"], local_hostname="mx.ailleurs.test", timeout=TIMEOUT
        ) as client:
            client.starttls(context=self.context())
            yield client

    def log(self) -> str:
        return stderr_of(self.tmp)


@pytest.fixture
def s3() -> Iterator[LocalS3]:
    with local_s3() as server:
        yield server


@contextmanager
def s3_node(settings: Settings, tmp_path: Path, s3: LocalS3, inline_max: int) -> Iterator[S3Node]:
    """A node whose blobs over ``inline_max`` go to a new bucket of ``s3``; its keys in a
    credentials file (the environment of ``caducee serve`` has no CADUCEE_* variable)."""
    bucket = use_s3(settings, s3, inline_max=inline_max)
    credentials = settings.data_dir / "s3-credentials.toml"
    credentials.write_text(
        f'access_key_id = "{ACCESS_KEY_ID}"\nsecret_access_key = "{SECRET_ACCESS_KEY}"\n'
    )
    credentials.chmod(0o600)
    settings.s3_credentials_file = credentials.name
    prepare(settings, LISTENERS)
    assert bucket in settings.config_path.read_text()
    assert SECRET_ACCESS_KEY not in settings.config_path.read_text()
    password = setup_account(settings)
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path, timeout=180.0)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        yield S3Node(settings, proc, ports, password, tmp_path)
        assert proc.poll() is None, f"the node died:\n{stderr_of(tmp_path)}"
        proc.send_signal(signal.SIGTERM)
        proc.wait(TIMEOUT)
    logged = stderr_of(tmp_path)
    assert SECRET_ACCESS_KEY not in logged and ACCESS_KEY_ID not in logged


def message(name: str, attachment_bytes: int = 0) -> bytes:
    """A message with a unique Message-ID; with an attachment of that many (random) bytes."""
    head = (
        f"From: {EXTERNAL}\r\nTo: {LOGIN}\r\nSubject: Resultats {name}\r\n"
        f"Message-ID: <{name}@ailleurs.test>\r\nMIME-Version: 1.0\r\n"
    )
    if not attachment_bytes:
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour.\r\n").encode()
    encoded = base64.encodebytes(os.urandom(attachment_bytes)).replace(b"\n", b"\r\n")
    return (
        head.encode()
        + b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        + b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCi-joint le compte rendu.\r\n"
        + b"--b1\r\nContent-Type: application/pdf; name=cr.pdf\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--b1--\r\n"
    )


def inbox(node: S3Node, client: imaplib.IMAP4_SSL | None = None) -> dict[str, bytes]:
    """Every message of the INBOX by Message-ID, its bytes as IMAP gives them (BODY[])."""
    own = client is None
    client = client or node.imap()
    try:
        assert client.select("INBOX")[0] == "OK"
        typ, data = client.uid("SEARCH", "ALL")
        assert typ == "OK"
        found: dict[str, bytes] = {}
        for uid in data[0].split():
            typ, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            assert typ == "OK", parts
            raw = parts[0][1]
            assert isinstance(raw, bytes)
            ident = re.search(rb"Message-ID: <([^>]+)>", raw)
            assert ident is not None
            assert ident.group(1).decode() not in found, "stored twice"
            found[ident.group(1).decode()] = raw
        return found
    finally:
        if own:
            client.logout()


def test_smtp_in_imap_out_byte_exact_big_messages_as_objects(
    settings: Settings, tmp_path: Path, s3: LocalS3
) -> None:
    sent = {
        "petit-1": message("petit-1"),
        "petit-2": message("petit-2", 20_000),
        "gros-3mo": message("gros-3mo", 3 * 1024 * 1024),
        "gros-8mo": message("gros-8mo", 8 * 1024 * 1024),
    }
    with s3_node(settings, tmp_path, s3, inline_max=100 * 1024) as node, node.mx() as mx:
        for raw in sent.values():
            assert mx.sendmail(EXTERNAL, [LOGIN], raw) == {}
        read = inbox(node)
        assert set(read) == {f"{name}@ailleurs.test" for name in sent}
        for name, raw in sent.items():
            # What the MX adds goes on top (Return-Path, Received); the rest, byte for byte.
            assert read[f"{name}@ailleurs.test"].endswith(raw), name
        # The two big ones are objects, sealed (the attachment's bytes are not in them); the
        # small ones stayed rows of the database.
        keys = s3.keys(settings.s3_bucket)
        assert len(keys) == 2
        client = s3.client()
        for key in keys:
            sealed = client.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
            assert b"Ci-joint le compte rendu" not in sealed
            assert all(raw[-4096:-100] not in sealed for raw in sent.values())


@dataclass
class Load:
    """Several SMTP clients sending until told to stop; what each message got."""

    node: S3Node
    acknowledged: dict[str, bytes] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, index: int) -> None:
        sequence = 0
        try:
            with self.node.mx() as mx:
                while not self.stop.is_set():
                    sequence += 1
                    name = f"charge-{index}-{sequence}"
                    size = 300_000 if sequence % 4 == 0 else 30_000
                    raw = message(name, size)
                    try:
                        mx.sendmail(EXTERNAL, [LOGIN], raw)
                    except smtplib.SMTPDataError as refusal:
                        with self.lock:
                            self.refused.append((refusal.smtp_code, refusal.smtp_error.decode()))
                        continue
                    with self.lock:
                        self.acknowledged[f"{name}@ailleurs.test"] = raw
        except Exception as error:  # a dropped connection, an unexpected reply: reported
            with self.lock:
                self.failures.append(repr(error))

    def count(self) -> tuple[int, int]:
        with self.lock:
            return len(self.acknowledged), len(self.refused)


def test_object_store_outage_during_smtp_load_loses_nothing_acknowledged(
    settings: Settings, tmp_path: Path, s3: LocalS3
) -> None:
    with s3_node(settings, tmp_path, s3, inline_max=0) as node:  # every message is an object
        load = Load(node)
        threads = [threading.Thread(target=load.client, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        reader = node.imap()
        try:
            until(lambda: load.count()[0] >= 20, "20 messages acknowledged", TIMEOUT)
            assert reader.select("INBOX")[0] == "OK"
            typ, data = reader.uid("SEARCH", "ALL")
            first_uid = data[0].split()[0]
            s3.stop()  # the object store goes away under load
            acknowledged_before = load.count()[0]
            until(lambda: load.count()[1] >= 8, "8 messages refused", TIMEOUT * 2)
            # IMAP: the index answers, a body cannot be read now (RFC 5530 §3 UNAVAILABLE).
            typ, data = reader.uid("FETCH", first_uid, "(RFC822.SIZE FLAGS)")
            assert typ == "OK"
            typ, data = reader.uid("FETCH", first_uid, "(BODY.PEEK[])")
            assert typ == "NO" and data[0] is not None and b"[UNAVAILABLE]" in data[0], data
            # APPEND: nothing stored without its content (RFC 5530 §3 UNAVAILABLE).
            typ, data = reader.append("INBOX", "", None, message("append", 50_000))
            assert typ == "NO" and b"[UNAVAILABLE]" in data[0], data
            # POP3: the same (RFC 3206 §4 SYS/TEMP), the session goes on.
            pop = node.pop3()
            with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
                pop.retr(1)
            assert pop.stat()[0] >= 20
            pop.quit()  # nothing marked deleted: nothing removed
            assert node.proc.poll() is None
            s3.start()  # back, with every object stored before
            until(
                lambda: load.count()[0] >= acknowledged_before + 20,
                "20 more messages acknowledged after the store came back",
                TIMEOUT * 2,
            )
            typ, data = reader.uid("FETCH", first_uid, "(BODY.PEEK[])")
            assert typ == "OK"
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(TIMEOUT)
            if not s3.running:
                s3.start()
        assert load.failures == []
        acknowledged, refused = load.count()
        assert refused >= 8
        # Every refusal was a temporary one, the storage's (RFC 3463 X.3.0): the sender retries.
        assert {(code, text.split(" ", 1)[0]) for code, text in load.refused} == {(451, "4.3.0")}
        read = inbox(node, reader)
        reader.logout()
        # Every message that got a 250 is there, whole and once; none of the refused ones.
        assert set(read) == set(load.acknowledged)
        for ident, raw in load.acknowledged.items():
            assert read[ident].endswith(raw), ident
        digests = {hashlib.sha256(raw).hexdigest() for raw in read.values()}
        assert len(digests) == acknowledged
        print(
            f"S3 outage under SMTP load: {acknowledged} acknowledged, {len(read)} read back, "
            f"{refused} refused with 451 4.3.0"
        )


def test_doctor_sees_the_bucket_backup_copies_the_objects_restore_reads_them(
    settings: Settings,
    backend: str,
    tmp_path: Path,
    s3: LocalS3,
    request: pytest.FixtureRequest,
) -> None:
    data = str(settings.data_dir)
    sent = {f"archive-{n}": message(f"archive-{n}", 150_000 * n) for n in range(4)}
    archives, key_file = tmp_path / "archives", tmp_path / "backup-key.txt"
    with s3_node(settings, tmp_path, s3, inline_max=100 * 1024) as node:
        with node.mx() as mx:
            for raw in sent.values():
                assert mx.sendmail(EXTERNAL, [LOGIN], raw) == {}
        healthy = caducee("doctor", "--data", data)
        assert f"stockage objet S3 joignable : {settings.s3_bucket}" in healthy.stdout
        assert "suspendues" not in healthy.stdout
        with s3_blobs.hold_removals(settings) as bucket:  # a backup under way: no warning
            assert "suspendues" not in caducee("doctor", "--data", data).stdout
            assert bucket.head_object(Bucket=settings.s3_bucket, Key=s3_blobs.HOLD_KEY)
        s3.stop()
        try:
            down = caducee("doctor", "--data", data)
        finally:
            s3.start()
        assert down.returncode == 1
        assert "stockage objet S3 injoignable" in down.stdout
        assert SECRET_ACCESS_KEY not in down.stdout + down.stderr
        created = caducee("backup", "key", "create", "--data", data, "--out", str(key_file))
        assert created.returncode == 0, created.stderr
        result = caducee("backup", "--to", str(archives), "--data", data)  # while serving
        assert result.returncode == 0, result.stderr
    [archive] = list(archives.iterdir())
    manifest = (archive / "manifest.json").read_text()
    objects = s3.keys(settings.s3_bucket)
    assert len(objects) == 3  # the three messages over 100 KiB, nothing else (no hold left)
    for key in objects:  # copied under the names blob files have
        assert f'"blobs/{key}"' in manifest
    # The archive is enough: the bucket's objects are deleted before the restored node runs.
    s3.client().delete_objects(
        Bucket=settings.s3_bucket, Delete={"Objects": [{"Key": k} for k in objects]}
    )
    restored_dir = tmp_path / "restored"
    restored = caducee(
        "restore", "--from", str(archives), "--data", str(restored_dir),
        "--key", str(key_file), *new_database(backend, request),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    again = load_settings(restored_dir)
    assert again.blob_store == "files"  # never the original installation's bucket
    (again.run_dir / "listeners.json").unlink(missing_ok=True)
    with serve_process(again, tmp_path) as proc:
        bound = wait_listeners(again, proc, tmp_path, timeout=180.0)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        read = inbox(S3Node(again, proc, ports, node.password, tmp_path))
    assert set(read) == {f"{name}@ailleurs.test" for name in sent}
    for name, raw in sent.items():
        assert read[f"{name}@ailleurs.test"].endswith(raw), name
