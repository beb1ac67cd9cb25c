"""Readiness (issue 21): ``/readyz`` answers 200 when the node can serve, 503 naming what is
wrong otherwise — each failing check provoked for real (an expired certificate, a stale
whitelist, a CRL out of date, clamd stopped, a listener closed, a queue no worker takes) — and
``caducee doctor`` prints the same checks. Both backends."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from caducee.app import App
from caducee.health import trust_list
from caducee.services import queue
from caducee.tls import SERVER_CERT, SERVER_KEY, create_dev_ca
from caducee.web import create_web_app
from tests.clamd import start_clamd
from tests.health.pki import TestPKI
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.test_cli import caducee, init_installation


@pytest.fixture
def listener() -> Iterator[str]:
    """A listening socket standing for one of the node's doors."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        host, port = sock.getsockname()[:2]
        yield f"{host}:{port}"


@pytest.fixture
async def node(app: App, listener: str) -> App:
    """A node whose every check passes: certificate, listeners up, a fresh whitelist."""
    create_dev_ca(app.settings.tls_dir, app.settings.hostname)
    app.settings.listeners = {"imaps": listener}
    app.settings.run_dir.mkdir(parents=True, exist_ok=True)
    (app.settings.run_dir / "listeners.json").write_text(json.dumps({"imaps": listener}))
    fresh = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    await trust_list.import_whitelist(
        app, whitelist_xml([("cabinet-a.test", operator_dn(1))], generated=fresh)
    )
    return app


async def readyz(app: App) -> tuple[int, dict[str, dict[str, Any]]]:
    transport = httpx.ASGITransport(app=create_web_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        response = await client.get("/readyz")
    body = response.json()
    assert body["status"] == ("ready" if response.status_code == 200 else "not ready")
    return response.status_code, {c["name"]: c for c in body["checks"]}


def failing(checks: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, c in checks.items() if c["status"] == "fail"}


async def test_ready_when_every_check_passes(node: App) -> None:
    status, checks = await readyz(node)
    assert status == 200, checks
    assert failing(checks) == set()
    assert checks["database"]["status"] == "ok"
    assert checks["listeners"]["status"] == "ok" and "imaps" in checks["listeners"]["message"]
    assert checks["trust_list"]["status"] == "ok"
    assert checks["queue"]["status"] == "ok"
    # Not configured: said, but the node is ready.
    assert checks["antivirus"]["status"] == "warn"
    assert "antivirus off" in checks["antivirus"]["message_en"]


async def test_an_expired_certificate_is_not_ready(node: App) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node.settings.hostname)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now - timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    tls = node.settings.tls_dir
    (tls / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tls / SERVER_KEY).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    status, checks = await readyz(node)
    assert status == 503 and failing(checks) == {"certificate"}
    assert "certificat TLS expiré le" in checks["certificate"]["message"]


async def test_a_stale_whitelist_is_not_ready(node: App) -> None:
    old = (datetime.now(UTC) - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%S")
    await trust_list.import_whitelist(
        node, whitelist_xml([("cabinet-a.test", operator_dn(1))], generated=old)
    )
    status, checks = await readyz(node)
    assert status == 503 and failing(checks) == {"trust_list"}
    assert "plus de 7 jours" in checks["trust_list"]["message"]


async def test_a_crl_out_of_date_is_not_ready(node: App, tmp_path: Path) -> None:
    pki = TestPKI(tmp_path / "pki")
    crl_dir = tmp_path / "crl"
    crl_dir.mkdir()
    node.settings.trust_ca_file = str(pki.ca_path)
    node.settings.trust_crl_dir = str(crl_dir)
    status, checks = await readyz(node)  # a CA without its CRL
    assert status == 503 and failing(checks) == {"crl"}
    assert "aucune CRL valide" in checks["crl"]["message"]
    (crl_dir / "ac.crl").write_bytes(pki.crl())
    status, checks = await readyz(node)
    assert status == 200 and checks["crl"]["status"] == "ok"
    # A newer CRL whose nextUpdate has passed (signed 30 days ago, valid 7): out of date.
    # The check only reads: it leaves no file behind (doctor may run as another user).
    assert not (node.settings.data_dir / "trust" / "crl-valid").exists()
    stale_dir = tmp_path / "crl-stale"
    stale_dir.mkdir()
    (stale_dir / "ac.crl").write_bytes(pki.crl(updated=datetime.now(UTC) - timedelta(days=30)))
    node.settings.trust_crl_dir = str(stale_dir)
    status, checks = await readyz(node)
    assert status == 503 and failing(checks) == {"crl"}
    assert "périmée depuis le" in checks["crl"]["message"]


async def test_clamd_stopped_is_not_ready(node: App, tmp_path: Path) -> None:
    clamd = start_clamd(tmp_path / "clamd")
    try:
        node.settings.antivirus_clamd = clamd.address
        status, checks = await readyz(node)
        assert status == 200 and checks["antivirus"]["status"] == "ok"
    finally:
        clamd.stop()
    status, checks = await readyz(node)
    assert status == 503 and failing(checks) == {"antivirus"}
    assert "antivirus ClamAV injoignable" in checks["antivirus"]["message"]
    assert "refusé temporairement (451)" in checks["antivirus"]["message"]


async def test_a_closed_listener_is_not_ready(node: App) -> None:
    with socket.create_server(("127.0.0.1", 0)) as gone:
        address = "{}:{}".format(*gone.getsockname()[:2])
    node.settings.listeners = {**node.settings.listeners, "smtp": address}
    status, checks = await readyz(node)  # not in listeners.json
    assert status == 503 and failing(checks) == {"listeners"}
    bound = json.loads((node.settings.run_dir / "listeners.json").read_text())
    (node.settings.run_dir / "listeners.json").write_text(json.dumps({**bound, "smtp": address}))
    status, checks = await readyz(node)  # named, but nothing accepts there
    assert status == 503 and "ports fermés : smtp" in checks["listeners"]["message"]
    (node.settings.run_dir / "listeners.json").unlink()
    status, checks = await readyz(node)
    assert status == 503 and "ports pas encore ouverts" in checks["listeners"]["message"]


async def test_a_queue_no_worker_takes_is_not_ready(node: App) -> None:
    # Queued an hour ago, due since: no delivery worker runs in this test's node.
    await queue.enqueue(
        node,
        b"From: dr@cabinet-a.test\r\nSubject: x\r\n\r\nx\r\n",
        "dr@cabinet-a.test",
        [queue.QueueRecipient("confrere@ailleurs.test")],
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    status, checks = await readyz(node)
    assert status == 503 and failing(checks) == {"queue"}
    assert "file d'envoi bloquée" in checks["queue"]["message"]
    assert "1 en attente" in checks["queue"]["message"]
    node.settings.health_queue_stuck_minutes = 120
    status, checks = await readyz(node)
    assert status == 200 and "1 destinataire(s) en attente" in checks["queue"]["message"]


def test_doctor_prints_the_readiness_checks(tmp_path: Path) -> None:
    data = init_installation(tmp_path)
    doctor = caducee("doctor", "--data", str(data))
    assert doctor.returncode == 0, doctor.stdout
    for line in (
        "certificat TLS valide",
        "serveur arrêté (pas de run/listeners.json)",
        "file d'envoi : 0 destinataire(s) en attente",
        "aucune liste blanche MSSanté",
        "schéma à jour",
    ):
        assert line in doctor.stdout, (line, doctor.stdout)
    config = data / "caducee.toml"
    text = config.read_text().replace('clamd = ""', 'clamd = "unix:/nulle-part/clamd.ctl"')
    config.write_text(text)
    sick = caducee("doctor", "--data", str(data))
    assert sick.returncode == 1
    assert "antivirus ClamAV injoignable (unix:/nulle-part/clamd.ctl)" in sick.stdout
