"""A practitioner's export of a mailbox (RGPD, issue 19), through a real ``caducee serve``
process: messages put in over IMAP, then exported by the CLI and by the webmail's « Mes
données » page; the archive is read by Python's ``mailbox`` module (mbox and Maildir) and
compared with what IMAP FETCH returns: exact bytes, flags, internal dates. Another practice's
mailbox and a mailbox the user has no delegation for are refused (403)."""

from __future__ import annotations

import asyncio
import hashlib
import imaplib
import io
import json
import mailbox
import re
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.domain.mail_export import unquote_mbox
from caducee.errors import LimitReached
from caducee.services import mailbox_export, mfa
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from caducee.store.tables import audit_log
from tests.services.auth_helpers import PASSWORD
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, wait_listeners

OWNER = "dr@cabinet.test"
COLLEAGUE = "associe@cabinet.test"
OTHER = "dr@autre.test"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
FETCHED = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\) INTERNALDATE \"([^\"]+)\"")

MESSAGES = [
    # (folder, flags, bytes): a "From " line and a quoted one in a body, a message without a
    # final line end, an unseen one, a non-ASCII folder.
    ("INBOX", r"(\Seen)", b"From: a@ailleurs.test\r\nSubject: un\r\n\r\nFrom here on.\r\n"),
    (
        "INBOX",
        r"(\Seen \Flagged \Answered)",
        b"From: b@ailleurs.test\r\nSubject: deux\r\n\r\n>From quoted\r\n>>From twice\r\nfin",
    ),
    ("INBOX", "()", b"From: c@ailleurs.test\r\nSubject: trois\r\n\r\nNon lu.\r\n"),
    ("Archives/2025", r"(\Seen \Draft)", b"Subject: brouillon\r\n\r\nBrouillon.\r\n"),
    ("Comptes rendus", r"(\Deleted \Seen)", b"Subject: supprime\r\n\r\nEffac\xc3\xa9.\r\n"),
]
FOLDERS = ["Archives/2025", "Comptes rendus"]


#: Per folder: (UID, flags, exact bytes, internal date) of each message.
View = dict[str, list[tuple[int, set[str], bytes, datetime]]]


@dataclass
class Server:
    settings: Settings
    ports: dict[str, int]
    password: str

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.settings.tls_dir / "ca.crt"))

    def imap(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "localhost", self.ports["imaps"], ssl_context=self.context(), timeout=10
        )
        client.login(OWNER, self.password)
        return client

    def https(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"https://localhost:{self.ports['https']}", verify=self.context(), timeout=30
        )


def caducee(settings: Settings, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "caducee", *args, "--data", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[Server]:
    settings.hostname = "localhost"
    prepare(settings, {name: "127.0.0.1:0" for name in ("imaps", "https")})

    async def setup() -> str:
        async with open_app(settings) as app:
            place = await practice(app)
            other = await practice(app, "autre.test")
            for practice_id in (place.id, other.id):
                await mfa.set_second_factor_required(app, practice_id, False, actor="t", source="t")
            await person(app, OWNER)
            await person(app, COLLEAGUE)
            await person(app, OTHER)
            return await create_app_password(app, OWNER, "Thunderbird")

    password = asyncio.run(setup())
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path)
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        server = Server(settings, ports, password)
        imap = server.imap()
        for folder in FOLDERS:
            assert imap.create(f'"{folder}"')[0] == "OK"
        for folder, flags, raw in MESSAGES:
            assert imap.append(f'"{folder}"', flags, None, raw)[0] == "OK"
        imap.logout()
        yield server
        proc.terminate()
        proc.wait(15)


def imap_view(server: Server) -> View:
    """Per folder, (UID, flags, exact bytes, internal date) as IMAP FETCH returns them."""
    imap = server.imap()
    out: View = {}
    for folder in ["INBOX", *FOLDERS]:
        imap.select(f'"{folder}"', readonly=True)
        status, data = imap.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        assert status == "OK"
        items = []
        for part in data:
            if not isinstance(part, tuple):
                continue
            found = FETCHED.search(part[0])
            assert found, part[0]
            flags = set(found.group(2).decode().split()) - {"\\Recent"}
            stamp = found.group(3).decode().strip()
            when = datetime.strptime(stamp, "%d-%b-%Y %H:%M:%S %z")  # RFC 9051 date-time
            items.append((int(found.group(1)), flags, part[1], when))
        out[folder] = sorted(items, key=lambda item: item[0])
    imap.logout()
    return out


def check_manifest(
    archive: zipfile.ZipFile, fmt: str, expected: View
) -> dict[str, dict[str, object]]:
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == fmt
    assert manifest["mailbox"] == OWNER and manifest["account"] == OWNER
    assert manifest["messages"] == len(MESSAGES)
    assert "Export de la boîte" in archive.read("LISEZMOI.txt").decode()
    folders = {f["name"]: f for f in manifest["folders"]}
    assert set(folders) >= set(expected)
    for name, items in expected.items():
        listed = folders[name]["messages"]
        assert [m["uid"] for m in listed] == [uid for uid, _f, _r, _d in items]
        for entry, (_uid, flags, raw, when) in zip(listed, items, strict=True):
            assert set(entry["flags"]) == flags
            assert datetime.fromisoformat(entry["internal_date"]) == when
            assert entry["size"] == len(raw)
            assert entry["sha256"] == hashlib.sha256(raw).hexdigest()
    return folders


def check_mbox(data: bytes, tmp_path: Path, expected: View) -> None:
    archive = zipfile.ZipFile(io.BytesIO(data))
    folders = check_manifest(archive, "mbox", expected)
    for name, items in expected.items():
        path = tmp_path / f"{name.replace('/', '_')}.mbox"
        path.write_bytes(archive.read(str(folders[name]["path"])))
        box = mailbox.mbox(str(path))
        read = [unquote_mbox(box.get_bytes(key)) for key in box.iterkeys()]
        # The From line carries the internal date (RFC 4155: asctime, here UTC).
        stamps = [box.get_message(key).get_from().split(" ", 1)[1] for key in box.iterkeys()]
        box.close()
        assert stamps == [time.asctime(when.astimezone(UTC).timetuple()) for *_x, when in items]
        # A message lacking a final line end gets one in an mbox: the manifest's size says
        # where its exact bytes end.
        sizes = [int(m["size"]) for m in folders[name]["messages"]]  # type: ignore[attr-defined]
        assert [text[:size] for text, size in zip(read, sizes, strict=True)] == [
            raw for _uid, _flags, raw, _when in items
        ]
        assert all(len(text) - size in (0, 1) for text, size in zip(read, sizes, strict=True))


def check_maildir(data: bytes, tmp_path: Path, expected: View) -> None:
    archive = zipfile.ZipFile(io.BytesIO(data))
    folders = check_manifest(archive, "maildir", expected)
    root = tmp_path / "unzipped"
    archive.extractall(root)
    letters = {"\\Seen": "S", "\\Answered": "R", "\\Flagged": "F", "\\Deleted": "T", "\\Draft": "D"}
    for name, items in expected.items():
        box = mailbox.Maildir(str(root / str(folders[name]["path"])), factory=None, create=False)
        read = sorted(
            (box.get_bytes(key), set(box.get_message(key).get_flags())) for key in box.iterkeys()
        )
        wanted = sorted((raw, {letters[f] for f in flags}) for _uid, flags, raw, _d in items)
        assert read == wanted
    top = mailbox.Maildir(str(root / "Maildir"), factory=None, create=False)
    assert set(top.list_folders()) >= {"Archives.2025", "Comptes rendus", "Sent"}


def web_login(http: httpx.Client, login: str) -> str:
    page = http.get("/connexion")
    found = CSRF_FIELD.search(page.text)
    assert found
    answer = http.post(
        "/connexion",
        data={"identifiant": login, "mot_de_passe": PASSWORD, "csrf": found.group(1)},
    )
    assert answer.status_code == 303, answer.text[:300]
    mine = http.get("/compte/donnees")
    assert mine.status_code == 200
    token = CSRF_FIELD.search(mine.text)
    assert token
    return token.group(1)


def export_actions(settings: Settings) -> list[tuple[str, str, str, str]]:
    async def go() -> list[tuple[str, str, str, str]]:
        async with open_app(settings) as app, app.db.read() as conn:
            rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).all()
        return [
            (r.actor, r.target, r.result, str(r.details))
            for r in rows
            if r.action == "mailbox.export"
        ]

    return asyncio.run(go())


def test_the_cli_exports_mbox_and_maildir_matching_imap(server: Server, tmp_path: Path) -> None:
    expected = imap_view(server)
    assert sum(len(items) for items in expected.values()) == len(MESSAGES)
    mbox_file = tmp_path / "boite-mbox.zip"
    done = caducee(server.settings, "export", "mailbox", OWNER, "--to", str(mbox_file))
    assert "5 message(s)" in done.stdout
    check_mbox(mbox_file.read_bytes(), tmp_path, expected)

    maildir_file = tmp_path / "boite-maildir.zip"
    caducee(
        server.settings, "export", "mailbox", OWNER, "--to", str(maildir_file),
        "--format", "maildir",
    )  # fmt: skip
    check_maildir(maildir_file.read_bytes(), tmp_path, expected)

    # An existing file is never overwritten; an unknown format is refused.
    refused = caducee(server.settings, "export", "mailbox", OWNER, "--to", str(mbox_file), ok=False)
    assert "existe déjà" in refused.stderr
    refused = caducee(
        server.settings, "export", "mailbox", OWNER, "--to", str(tmp_path / "x.zip"),
        "--format", "pst", ok=False,
    )  # fmt: skip
    assert "Format d'export inconnu" in refused.stderr
    audited = export_actions(server.settings)
    assert [(actor, target) for actor, target, _r, _d in audited] == [
        ("cli", OWNER),
        ("cli", OWNER),
    ]
    assert all("Subject" not in details and "un" not in details for *_x, details in audited)


def test_the_webmail_exports_the_owners_mailbox_and_refuses_others(
    server: Server, tmp_path: Path
) -> None:
    expected = imap_view(server)
    with server.https() as http:
        csrf = web_login(http, OWNER)
        answer = http.post(
            "/compte/donnees/export", data={"csrf": csrf, "boite": OWNER, "format": "mbox"}
        )
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/zip"
        assert answer.headers["content-disposition"].startswith("attachment;")
        assert OWNER in answer.headers["content-disposition"]
        assert answer.headers["cache-control"] == "no-store"
        check_mbox(answer.content, tmp_path, expected)

        answer = http.post(
            "/compte/donnees/export", data={"csrf": csrf, "boite": OWNER, "format": "maildir"}
        )
        assert answer.status_code == 200
        check_maildir(answer.content, tmp_path, expected)

        # Another practice's mailbox, and a colleague's without a delegation: 403, nothing.
        for address in (OTHER, COLLEAGUE):
            refused = http.post("/compte/donnees/export", data={"csrf": csrf, "boite": address})
            assert refused.status_code == 403
            assert refused.headers["content-type"].startswith("text/html")
        # Without the form's token: refused.
        assert http.post("/compte/donnees/export", data={"boite": OWNER}).status_code == 403
    # The archives were removed from the data directory once sent.
    assert list((server.settings.data_dir / "exports").iterdir()) == []
    with server.https() as http:
        # Anonymous: sent to the login page, nothing exported.
        anonymous = http.post("/compte/donnees/export", data={"boite": OWNER})
        assert anonymous.status_code == 303 and "/connexion" in anonymous.headers["location"]
        csrf = web_login(http, COLLEAGUE)
        assert OWNER not in http.get("/compte/donnees").text
        refused = http.post("/compte/donnees/export", data={"csrf": csrf, "boite": OWNER})
        assert refused.status_code == 403
        # A read-only delegation is a right to read, hence to export.
        caducee(server.settings, "mailbox", "delegate", OWNER, "--to", COLLEAGUE, "--read-only")
        assert OWNER in http.get("/compte/donnees").text
        allowed = http.post(
            "/compte/donnees/export", data={"csrf": csrf, "boite": OWNER, "format": "maildir"}
        )
        assert allowed.status_code == 200
        check_maildir(allowed.content, tmp_path / "delegate", expected)
    audited = export_actions(server.settings)
    assert [(actor, target) for actor, target, _r, _d in audited] == [
        (OWNER, OWNER),
        (OWNER, OWNER),
        (COLLEAGUE, OWNER),
    ]


async def test_an_export_beyond_the_limit_is_refused_in_french(app: App, tmp_path: Path) -> None:
    await practice(app)
    _account, box = await person(app, OWNER)
    target = tmp_path / "x.zip"
    await mailbox_export.export_mailbox(
        app, box, target, fmt="mbox", actor="t", source="t", limit=10
    )
    assert zipfile.ZipFile(target).namelist()  # an empty mailbox fits
    target.unlink()
    raw = b"Subject: x\r\n\r\n" + b"y" * 100 + b"\r\n"
    await deliver_local(app, raw, [OWNER], sender="a@b.test", source="t")
    with pytest.raises(LimitReached) as refused:
        await mailbox_export.export_mailbox(
            app, box, target, fmt="mbox", actor="t", source="t", limit=10
        )
    assert "Boîte trop volumineuse pour un export" in refused.value.fr
    assert not target.exists()
