"""Backup and restore (issue 19), as an operator does them: ``caducee backup --to`` while a real
``caducee serve`` receives mail over SMTP, ``caducee restore`` into a new data dir (and, on
PostgreSQL, a new database), ``caducee audit verify`` and ``caducee serve`` on what came back,
read over IMAP with an app password created before the backup.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings, load_settings
from caducee.errors import IntegrityError, InvalidInput
from caducee.services import backup, mailboxes
from caducee.services.app_passwords import create_app_password
from caducee.services.backup import read_private_key
from caducee.services.messages import store_message
from caducee.store.backup_crypto import BackupPrivateKey
from tests.pgcluster import PgCluster
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
SENDER = "labo@ailleurs.test"
THREADS = 3
_SUBJECT = re.compile(rb"Subject: (load-\d+-\d+)")


def caducee(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean_env(), "CADUCEE_LANG": "fr"},
    )


@dataclass
class Installation:
    settings: Settings
    app_password: str
    key_file: Path


def install(settings: Settings, tmp_path: Path) -> Installation:
    """A served data dir: a practitioner, an app password, the backup key (private key in a
    file outside the data dir)."""
    prepare(settings, {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"})

    async def setup() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            return await create_app_password(app, LOGIN, "Thunderbird")

    password = asyncio.run(setup())
    key_file = tmp_path / "backup-key.txt"
    created = caducee(
        "backup", "key", "create", "--data", str(settings.data_dir), "--out", str(key_file)
    )
    assert created.returncode == 0, created.stderr
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert "CADUCEE-BACKUP-SECRET-1" not in (settings.keys_dir / "backup.pub").read_text()
    return Installation(settings, password, key_file)


@dataclass
class Sender:
    """One SMTP client thread: the markers of the messages that got 250, in order."""

    number: int
    port: int
    acked: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as smtp:
                n = 0
                while not stop.is_set():
                    marker = f"load-{self.number}-{n}"
                    body = "".join(f"ligne {k} du compte rendu {marker}\r\n" for k in range(60))
                    raw = f"From: <{SENDER}>\r\nTo: <{LOGIN}>\r\nSubject: {marker}\r\n\r\n{body}"
                    smtp.sendmail(SENDER, [LOGIN], raw.encode())  # raises unless 250
                    self.acked.append(marker)
                    n += 1
        except (smtplib.SMTPException, OSError) as error:
            self.error = error


def imap_client(settings: Settings, password: str) -> imaplib.IMAP4:
    bound = json.loads((settings.run_dir / "listeners.json").read_text())
    port = int(bound["imap"].rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    client = imaplib.IMAP4("127.0.0.1", port)
    client.host = settings.hostname  # the name the certificate is checked against
    client.starttls(context)
    client.login(LOGIN, password)
    return client


def inbox(client: imaplib.IMAP4) -> dict[str, set[str]]:
    """Every INBOX message's marker and its flags."""
    status, _ = client.select("INBOX")
    assert status == "OK"
    status, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert status == "OK"
    found: dict[str, set[str]] = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        marker = _SUBJECT.search(item[1])
        flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
        assert marker is not None and flags is not None, item
        found[marker.group(1).decode()] = set(flags.group(1).decode().split())
    return found


def mark(client: imaplib.IMAP4, markers: list[str], flag: str) -> None:
    client.select("INBOX")
    for marker in markers:
        status, data = client.uid("SEARCH", "SUBJECT", marker)
        assert status == "OK" and data[0], marker
        uid = data[0].split()[0].decode()
        assert client.uid("STORE", uid, "+FLAGS", f"({flag})")[0] == "OK"


def new_database(backend: str, request: pytest.FixtureRequest) -> list[str]:
    if backend != "postgres":
        return []
    pg: PgCluster = request.getfixturevalue("pg_cluster")
    return ["--database-url", pg.url(pg.create_database())]


def test_backup_during_smtp_load_restores_every_acknowledged_message(
    settings: Settings, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings.blob_inline_max = 0  # every blob a file: the files must follow the snapshot
    site = install(settings, tmp_path)
    archives = tmp_path / "archives"
    stop = threading.Event()
    with serve_process(settings, tmp_path) as proc:
        port = int(wait_listeners(settings, proc, tmp_path)["smtp"].rsplit(":", 1)[1])
        senders = [Sender(n, port) for n in range(THREADS)]
        threads = [threading.Thread(target=s.run, args=(stop,)) for s in senders]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 60
            while sum(len(s.acked) for s in senders) < 30:
                assert time.monotonic() < deadline, [s.error for s in senders]
                time.sleep(0.01)
            client = imap_client(settings, site.app_password)
            seen, flagged = senders[0].acked[:4], senders[1].acked[:3]
            mark(client, seen, "\\Seen")
            mark(client, flagged, "\\Flagged")
            client.logout()
            before = [m for s in senders for m in list(s.acked)]  # 250 before the backup began
            result = caducee("backup", "--to", str(archives), "--data", str(settings.data_dir))
            during = sum(len(s.acked) for s in senders) - len(before)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert result.returncode == 0, result.stderr
        assert all(s.error is None for s in senders), [s.error for s in senders]
    assert "Archive écrite" in result.stdout
    [archive] = list(archives.iterdir())
    print(f"{len(before)} messages before the backup, {during} acknowledged during it")

    checked = caducee("backup", "verify", str(archive), "--key", str(site.key_file))
    assert checked.returncode == 0, checked.stderr
    assert "déchiffrée et authentifiée" in checked.stdout

    restored_dir = tmp_path / "restored"
    restored = caducee(
        "restore", "--from", str(archives), "--data", str(restored_dir),
        "--key", str(site.key_file), *new_database(backend, request),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert (restored_dir / "keys" / "master.key").stat().st_mode & 0o077 == 0
    audited = caducee("audit", "verify", "--data", str(restored_dir))
    assert audited.returncode == 0, audited.stdout + audited.stderr

    again = load_settings(restored_dir)
    assert again.database_url != settings.database_url or backend == "sqlite"
    (again.run_dir / "listeners.json").unlink(missing_ok=True)
    with serve_process(again, tmp_path) as proc:
        wait_listeners(again, proc, tmp_path)
        client = imap_client(again, site.app_password)  # the app password made before works
        found = inbox(client)
        client.logout()
    missing = [m for m in before if m not in found]
    assert not missing, f"{len(missing)} acknowledged messages missing: {missing[:5]}"
    for marker in seen:
        assert "\\Seen" in found[marker], (marker, found[marker])
    for marker in flagged:
        assert "\\Flagged" in found[marker], (marker, found[marker])
    untouched = [m for m in before if m not in seen and m not in flagged]
    assert all("\\Flagged" not in found[m] for m in untouched)


@pytest.fixture
def archived(settings: Settings, tmp_path: Path) -> Iterator[tuple[Installation, Path]]:
    """An archive of an installation whose blobs are files, some messages in it."""
    settings.blob_store = "files"
    settings.blob_inline_max = 0
    settings.cluster_single_node = True  # PostgreSQL with file blobs: one node, declared
    site = install(settings, tmp_path)

    with serve_process(settings, tmp_path) as proc:
        port = int(wait_listeners(settings, proc, tmp_path)["smtp"].rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for n in range(3):
                raw = f"From: <{SENDER}>\r\nTo: <{LOGIN}>\r\nSubject: load-9-{n}\r\n\r\ncorps\r\n"
                smtp.sendmail(SENDER, [LOGIN], raw.encode())
    made = caducee("backup", "--to", str(tmp_path / "archives"), "--data", str(settings.data_dir))
    assert made.returncode == 0, made.stderr
    [archive] = list((tmp_path / "archives").iterdir())
    yield site, archive


def _damage(archive: Path, how: str, other_key: Path) -> tuple[Path, str]:
    """Damage a copy of the archive; the key file to restore with and the expected error."""
    blob = next((archive / "blobs").rglob("*.enc"))
    if how == "wrong key":
        return other_key, "Mauvaise clé de sauvegarde"
    if how == "flipped byte":
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0x01
        blob.write_bytes(bytes(data))
        return Path(), "somme de contrôle fausse"
    if how == "missing file":
        blob.unlink()
        return Path(), "fichier manquant"
    if how == "truncated file":
        database = next((archive / "database").iterdir())
        with open(database, "r+b") as handle:
            handle.truncate(database.stat().st_size - 100)
        return Path(), "tronqué"
    if how == "tampered manifest":
        manifest = archive / "manifest.json"
        text = manifest.read_text()
        manifest.write_text(text.replace('"messages": 3', '"messages": 4', 1))
        assert manifest.read_text() != text
        return Path(), "le manifeste a été modifié"
    raise AssertionError(how)


DAMAGES = ["wrong key", "flipped byte", "missing file", "truncated file", "tampered manifest"]


def test_restore_refuses_a_damaged_archive_or_a_wrong_key_and_leaves_nothing(
    archived: tuple[Installation, Path],
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    site, archive = archived
    other_key = tmp_path / "other-key.txt"
    other_key.write_text(BackupPrivateKey.generate().encoded() + "\n")
    os.chmod(other_key, 0o600)
    for how in DAMAGES:
        copy = tmp_path / how.replace(" ", "-")
        shutil.copytree(archive, copy / archive.name)
        key, expected = _damage(copy / archive.name, how, other_key)
        key = key if key != Path() else site.key_file
        target = tmp_path / f"new-{how.replace(' ', '-')}"
        target.mkdir()  # an empty NEWDIR is allowed, and must stay empty
        database = new_database(backend, request)
        if how in ("wrong key", "tampered manifest"):  # through the door, in French
            refused = caducee(
                "restore", "--from", str(copy / archive.name), "--data", str(target),
                "--key", str(key), *database,
            )  # fmt: skip
            assert refused.returncode == 1, (how, refused.stdout)
            assert expected in refused.stderr, (how, refused.stderr)
        else:  # the service that door calls
            with pytest.raises(IntegrityError) as failed:
                backup.restore(
                    copy / archive.name, target, read_private_key(key),
                    database_url=database[1] if database else "",
                )  # fmt: skip
            assert expected in failed.value.fr, how
        assert list(target.iterdir()) == [], how
        assert not [p for p in tmp_path.iterdir() if ".restore-" in p.name], how
        if how != "wrong key":  # `backup verify --key` finds the same damage
            with pytest.raises(IntegrityError) as failed:
                backup.verify(copy / archive.name, read_private_key(site.key_file))
            assert expected in failed.value.fr, how
        if how in ("flipped byte", "missing file", "truncated file"):
            with pytest.raises(IntegrityError):  # without the key: the checksums
                backup.verify(copy / archive.name)
    intact = caducee("backup", "verify", str(archive))
    assert intact.returncode == 0 and "sommes de contrôle justes" in intact.stdout, intact.stderr
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "caducee.toml").write_text("")
    with pytest.raises(InvalidInput) as refused_dir:
        fresh = new_database(backend, request)
        backup.restore(
            archive, occupied, read_private_key(site.key_file),
            database_url=fresh[1] if fresh else "",
        )  # fmt: skip
    assert "répertoire neuf" in refused_dir.value.fr
    if backend == "postgres":  # the database must be new and empty: here, the live one
        with pytest.raises(InvalidInput) as refused_db:
            backup.restore(
                archive, tmp_path / "elsewhere", read_private_key(site.key_file),
                database_url=site.settings.database_url,
            )  # fmt: skip
        assert "n'est pas vide" in refused_db.value.fr
        assert not (tmp_path / "elsewhere").exists()


def test_backup_and_restore_report_their_progress(
    settings: Settings, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """``caducee backup``'s progress bar counts what the archive writes: the database snapshot,
    then each blob file, up to the total (from the archive's worker thread); ``caducee
    restore``'s counts the archive's files it restores."""
    site = install(settings, tmp_path)
    big = b"Subject: gros\r\n\r\n" + b"x" * (settings.blob_inline_max + 1024) + b"\r\n"

    async def go() -> tuple[backup.ArchiveReport, list[tuple[int, int]]]:
        calls: list[tuple[int, int]] = []
        async with open_app(settings) as app:
            box = await mailboxes.get_mailbox(app, LOGIN)
            for _ in range(3):
                await store_message(app, box.id, "INBOX", big)
            report = await backup.back_up(
                app, tmp_path / "archives", progress=lambda done, total: calls.append((done, total))
            )
        return report, calls

    report, calls = asyncio.run(go())
    blobs = [p for p in (report.path / "blobs").rglob("*") if p.is_file()]
    # The blobs table (PostgreSQL's default store) is in the database snapshot: no blob file.
    assert len(blobs) >= 3 if settings.blob_store == "files" else blobs == []
    assert calls == [(done, len(blobs) + 1) for done in range(1, len(blobs) + 2)]
    restored: list[tuple[int, int]] = []
    database = new_database(backend, request)
    done = backup.restore(
        report.path,
        tmp_path / "restored",
        read_private_key(site.key_file),
        database_url=database[1] if database else "",
        progress=lambda count, total: restored.append((count, total)),
    )
    assert restored == [(count, done.files) for count in range(done.files + 1)]
