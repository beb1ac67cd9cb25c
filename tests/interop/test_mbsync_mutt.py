"""Real mail clients from Debian against a real ``caducee serve`` over TLS with the test CA:
mbsync (isync) syncing a mailbox both ways (pull, push a new message, a flag and a deletion,
then resync after another client's changes), and mutt in batch mode sending over SMTPS with an
attachment and filing its copy in the IMAP Sent folder."""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.services import mailboxes, webmail
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} introuvable : scripts/system-deps test l'installe")
    return found


def _setup(settings: Settings) -> str:
    async def go() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            await person(app, "confrere@cabinet.test")
            for n in range(3):
                body = f"From: a@ailleurs.test\r\nSubject: CR {n}\r\n\r\nCR {n}\r\n"
                await deliver_local(app, body.encode(), [LOGIN])
            return await create_app_password(app, LOGIN, "clients")

    return asyncio.run(go())


def _maildir_files(root: Path, folder: str) -> list[Path]:
    return sorted(
        p for sub in ("new", "cur") for p in (root / folder / sub).glob("*") if p.is_file()
    )


def _server_state(port: int, context: ssl.SSLContext, password: str) -> dict[str, object]:
    client = imaplib.IMAP4_SSL("localhost", port, ssl_context=context, timeout=10)
    client.login(LOGIN, password)
    client.select("INBOX")
    _typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects, flagged = [], []
    for item in data:
        if isinstance(item, tuple):
            subject = item[1].decode().strip().removeprefix("Subject: ")
            subjects.append(subject)
            if b"\\Flagged" in item[0]:
                flagged.append(subject)
    client.logout()
    return {"subjects": sorted(subjects), "flagged": flagged}


def test_mbsync_both_ways(settings: Settings, tmp_path: Path) -> None:
    mbsync = _tool("mbsync")
    prepare(settings, {"imaps": "127.0.0.1:0"})
    password = _setup(settings)
    ca = settings.tls_dir / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca))
    local = tmp_path / "mail"
    local.mkdir()
    with serve_process(settings, tmp_path) as proc:
        port = int(wait_listeners(settings, proc, tmp_path)["imaps"].rpartition(":")[2])
        rc = tmp_path / "mbsyncrc"
        rc.write_text(
            f"IMAPAccount caducee\nHost localhost\nPort {port}\nUser {LOGIN}\nPass {password}\n"
            f"SSLType IMAPS\nCertificateFile {ca}\n\n"
            "IMAPStore remote\nAccount caducee\n\n"
            f"MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n"
            "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX Archive\nCreate Both\n"
            "Expunge Both\nSyncState *\n"
        )

        def sync() -> None:
            result = subprocess.run(
                [mbsync, "-c", str(rc), "-a"], capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stdout + result.stderr

        sync()  # 1. pull
        pulled = _maildir_files(local, "INBOX")
        assert len(pulled) == 3 and (local / "Archive").is_dir()
        # 2. push: a new local message, a flag, a deletion
        (local / "INBOX" / "new" / f"{int(time.time())}.local.mail").write_bytes(
            b"From: dr@cabinet.test\r\nSubject: Ecrit hors ligne\r\n\r\nTexte\r\n"
        )
        first, second = pulled[0], pulled[1]

        def subject(path: Path) -> str:
            for line in path.read_bytes().split(b"\n"):
                if line.startswith(b"Subject: "):
                    return line[9:].strip().decode()
            return ""

        flagged, deleted = subject(first), subject(second)
        first.rename(first.parent.parent / "cur" / (first.name.split(":2,")[0] + ":2,FS"))
        second.rename(second.parent.parent / "cur" / (second.name.split(":2,")[0] + ":2,ST"))
        sync()
        state = _server_state(port, context, password)
        kept = sorted({"CR 0", "CR 1", "CR 2", "Ecrit hors ligne"} - {deleted})
        assert state == {"subjects": kept, "flagged": [flagged]}
        # 3. another client changes the server: a new message and a flag; mbsync brings both
        other = imaplib.IMAP4_SSL("localhost", port, ssl_context=context, timeout=10)
        other.login(LOGIN, password)
        other.append("INBOX", None, None, b"Subject: Depuis un autre poste\r\n\r\nx\r\n")
        other.select("INBOX")
        other.uid("STORE", "1:*", "+FLAGS", "(\\Seen)")
        other.logout()
        sync()
        files = _maildir_files(local, "INBOX")
        assert len(files) == 4
        assert all(":2," in f.name and "S" in f.name.split(":2,")[1] for f in files)
        texts = [f.read_bytes() for f in files]
        assert any(b"Depuis un autre poste" in t for t in texts)


def test_mutt_batch_send_with_attachment_and_fcc(settings: Settings, tmp_path: Path) -> None:
    mutt = _tool("mutt")
    prepare(settings, {"imaps": "127.0.0.1:0", "submissions": "127.0.0.1:0"})
    password = _setup(settings)
    ca = settings.tls_dir / "ca.crt"
    context = ssl.create_default_context(cafile=str(ca))
    with serve_process(settings, tmp_path) as proc:
        ports = {
            k: int(v.rpartition(":")[2])
            for k, v in wait_listeners(settings, proc, tmp_path).items()
        }
        muttrc = tmp_path / "muttrc"
        muttrc.write_text(
            f'set from="{LOGIN}"\nset realname="Dr Test"\n'
            f'set smtp_url="smtps://{LOGIN}@localhost:{ports["submissions"]}/"\n'
            f'set smtp_pass="{password}"\nset imap_user="{LOGIN}"\nset imap_pass="{password}"\n'
            f'set folder="imaps://localhost:{ports["imaps"]}/"\nset record="=Sent"\n'
            f'set certificate_file="{tmp_path / "certs"}"\nset ssl_ca_certificates_file="{ca}"\n'
            "set ssl_verify_host=yes\nset copy=yes\nset charset=utf-8\nset send_charset=utf-8\n"
        )
        attachment = tmp_path / "ordonnance.pdf"
        attachment.write_bytes(b"%PDF-1.4 ordonnance")
        result = subprocess.run(
            [mutt, "-n", "-F", str(muttrc), "-s", "Envoi par mutt", "-a", str(attachment),
             "--", "confrere@cabinet.test"],
            input="Bonjour, voici l'ordonnance.\n",
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        client = imaplib.IMAP4_SSL("localhost", ports["imaps"], ssl_context=context, timeout=10)
        client.login(LOGIN, password)
        client.select("Sent")
        _typ, data = client.search(None, "SUBJECT", '"Envoi par mutt"')
        assert data[0].split(), "the Fcc copy is in Sent"
        client.logout()

    async def delivered() -> list[bytes]:

        async with open_app(settings) as app:
            access = await mailboxes.open_mailbox(
                app, "confrere@cabinet.test", "confrere@cabinet.test"
            )
            from caducee.domain.model import SpecialUse

            inbox = await webmail.special_folder(app, access, SpecialUse.INBOX)
            rows = await webmail.rows_by_uid(app, inbox, set(range(1, 10)))
            return [(await webmail.message(app, inbox, r.uid))[1] for r in rows]

    [raw] = asyncio.run(delivered())
    assert b"Subject: Envoi par mutt" in raw and b"ordonnance.pdf" in raw
