"""schemathesis (property-based, from the OpenAPI description) against a real ``caducee serve``
over HTTPS with a valid API token: no request it generates gets a server error, and every
status it gets is one the description documents for that operation (status_code_conformance)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import MailboxType
from caducee.health import pickup
from caducee.services import api_tokens, mailboxes
from caducee.services.delivery import deliver_local
from tests.health.lots_seed import seed
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

LOGIN = "dr@cabinet.test"
TLT = "tlt@cabinet.test"


def _setup(settings: Settings) -> str:
    async def go() -> str:
        async with open_app(settings) as app:
            cabinet = await practice(app)
            _account, box = await person(app, LOGIN)
            await person(app, "confrere@cabinet.test")
            mail = (
                f"From: a@ailleurs.test\r\nTo: {LOGIN}\r\nSubject: CR\r\n"
                "Message-ID: <s1@ailleurs.test>\r\n\r\nTexte\r\n"
            )
            await deliver_local(app, mail.encode(), [LOGIN])
            await pickup.create_pickup(  # a message left on the patient portal
                app, practice_id=cabinet.id, sender_mailbox_id=box.id, sender_address=LOGIN,
                patient_email="patient@ailleurs.test", patient_mobile="+33612345678",
                raw_message=mail.encode(), passphrase="cheval-agrafe-42", source="t",
            )  # fmt: skip
            await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, LOGIN)
            await seed(app, TLT)
            token, _ = await api_tokens.create_token(
                app, LOGIN, "schemathesis", [LOGIN, TLT],
                ["lecture", "marquage", "envoi", "patients", "lots"], actor="t", source="t",
            )  # fmt: skip
            return token

    return asyncio.run(go())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_server_error(settings: Settings, tmp_path: Path) -> None:
    settings.hostname = "localhost"
    prepare(settings, {"https": "127.0.0.1:0"})
    token = _setup(settings)
    with serve_process(settings, tmp_path) as proc:
        port = wait_listeners(settings, proc, tmp_path)["https"].rpartition(":")[2]
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"https://localhost:{port}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error,status_code_conformance",
                "--max-examples",
                "25",
                "--tls-verify",
                str(settings.tls_dir / "ca.crt"),
                "--workers",
                "1",
                "--seed",
                "2026",
                "--generation-deterministic",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Tested: 34" in result.stdout  # every operation was exercised
