"""End-to-end fixtures: a real ``caducee serve`` over HTTPS and Debian's headless Chromium
driven by Playwright (no browser download: ``executable_path=/usr/bin/chromium``).

Chromium reaches the node by its real name (``--host-resolver-rules`` maps it to 127.0.0.1),
so WebAuthn's relying-party id is the node's hostname; it trusts the node's development
certificate through ``--ignore-certificate-errors-spki-list`` (the SHA-256 of its public key):
``ignore_https_errors`` stays False, and a page with a certificate error would fail.
Missing Chromium skips these tests on a developer machine and fails them under CI.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import Role
from caducee.services import accounts, practices
from caducee.tls import SERVER_CERT
from tests.serving import prepare, serve_process, wait_listeners

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN = "admin@cabinet-e2e.test"
ADMIN_PASSWORD = "Correct-Horse-42-Battery"
DOMAIN = "cabinet-e2e.test"
MAILBOX_LIMIT = 3
REPO = Path(__file__).resolve().parents[2]
#: Where the browser tests write their screenshots: the docs' own with
#: ``CADUCEE_SCREENSHOTS=docs`` (to refresh them on purpose), else a scratch directory, so that
#: running the suite does not rewrite tracked files.
SCREENSHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("CADUCEE_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "caducee-screenshots"
)


def chromium_or_skip() -> Path:
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = (
        "Chromium introuvable (/usr/bin/chromium) : installez le paquet Debian « chromium » "
        "(scripts/system-deps test). / Chromium not found."
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def spki_sha256(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


@dataclass
class Node:
    settings: Settings
    base_url: str
    port: int
    chromium_args: list[str]


async def _populate(settings: Settings) -> None:
    async with open_app(settings) as app:
        await practices.create_practice(
            app, "Cabinet de test E2E", [DOMAIN], mailbox_limit=MAILBOX_LIMIT
        )
        await accounts.add_account(
            app,
            accounts.NewAccount(
                login=ADMIN,
                civility="Dr",
                first_name="Alice",
                last_name="Bernard",
                profession="Médecin généraliste",
                role=Role.ADMIN,
                password=ADMIN_PASSWORD,
            ),
        )


@pytest.fixture
def node(settings: Settings, tmp_path: Path) -> Iterator[Node]:
    chromium_or_skip()
    settings.hostname = "mail.cabinet-e2e.test"
    prepare(settings, {"https": "127.0.0.1:0"})
    asyncio.run(_populate(settings))
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path)
        port = int(bound["https"].rpartition(":")[2])
        args = [
            *CHROMIUM_ARGS,
            f"--host-resolver-rules=MAP {settings.hostname} 127.0.0.1",
            f"--ignore-certificate-errors-spki-list={spki_sha256(settings.tls_dir / SERVER_CERT)}",
        ]
        yield Node(settings, f"https://{settings.hostname}:{port}", port, args)
