"""Real POP3 clients (curl, fetchmail, poplib) against a real ``caducee serve`` process."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.services import mailboxes
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


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


def used_bytes(settings: Settings) -> int:
    async def go() -> int:
        async with open_app(settings) as app:
            return (await mailboxes.get_mailbox(app, LOGIN)).used_bytes

    return asyncio.run(go())


def test_curl_and_fetchmail(settings: Settings, tmp_path: Path) -> None:
    prepare(settings, {"pop3": "127.0.0.1:0", "pop3s": "127.0.0.1:0"})
    password = setup_mailbox(settings, 3)
    ca = settings.tls_dir / "ca.crt"
    with serve_process(settings, tmp_path) as proc:
        ports = {
            k: v.rsplit(":", 1)[1] for k, v in wait_listeners(settings, proc, tmp_path).items()
        }
        # curl: list over implicit TLS, then retrieve message 2 over STLS.
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
                f"pop3s://localhost:{ports['pop3s']}/",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        assert [line.split()[0] for line in listing.splitlines()] == ["1", "2", "3"]
        retrieved = subprocess.run(
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
                f"pop3://localhost:{ports['pop3']}/2",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        assert "Subject: CR 1" in retrieved and "Compte rendu 1" in retrieved
        # fetchmail: fetch everything into an mbox over implicit TLS, deleting on the server.
        mbox = tmp_path / "mbox"
        rc = tmp_path / "fetchmailrc"
        rc.write_text(
            f'poll localhost protocol pop3 port {ports["pop3s"]} user "{LOGIN}" '
            f'password "{password}" ssl sslcertck sslcertfile "{ca}" '
            f'mda "cat >> {mbox}"\n'
        )
        rc.chmod(0o600)
        result = subprocess.run(
            ["fetchmail", "-f", str(rc), "--nodetach", "--nosyslog", "-v"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        fetched = mbox.read_text()
        assert all(f"Compte rendu {n}" in fetched for n in range(3))
        proc.terminate()
        proc.wait(10)
    assert used_bytes(settings) == 0  # fetchmail deleted what it fetched
