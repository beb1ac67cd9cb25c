"""Three operators on loopback, each a real ``caducee serve`` with its own domain and an
operator certificate from a test CA (IGC-Santé's stand-in). A and B list each other; C is not
listed. Mail flows A→B and B→A over mutual TLS; C is refused by A; a certificate whose DN is not
the one listed, an expired and a revoked certificate are refused; so is plaintext."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import smtplib
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings, TransportRoute, render_config
from caducee.health import trust_list
from caducee.services import app_passwords, mailboxes
from caducee.services.audit import iter_records
from caducee.services.messages import read_message
from caducee.store.tables import messages as messages_table
from tests.conftest import make_settings
from tests.dnsserver import LocalDNS
from tests.health.pki import Issued, TestPKI
from tests.health.whitelists import whitelist_xml
from tests.pgcluster import PgCluster, free_port
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

ARRIVAL_TIMEOUT = 30.0


@dataclass
class Operator:
    name: str
    domain: str
    user: str
    settings: Settings
    cert: Issued
    smtp_port: int
    submission_port: int
    app_password: str = ""


async def _setup(op: Operator, listing: bytes) -> None:
    async with open_app(op.settings, upgrade=True) as app:
        await practice(app, op.domain)
        await person(app, op.user)
        op.app_password = await app_passwords.create_app_password(app, op.user, "test")
        await trust_list.import_whitelist(app, listing, source="test")


def _operator(
    name: str,
    tmp_path: Path,
    pki: TestPKI,
    dns: LocalDNS,
    crl_dir: Path,
    backend: str,
    pg: PgCluster | None,
) -> Operator:
    domain = f"{name}.mssante.test"
    settings = make_settings(tmp_path / name, backend, pg, dns_resolver=dns.resolver_spec)
    settings.hostname = "localhost"
    settings.trust_ca_file = str(pki.ca_path)
    settings.trust_crl_dir = str(crl_dir)
    cert = pki.issue(name, "localhost", f"Opérateur {name.upper()}")
    settings.trust_client_cert = str(cert.cert_path)
    settings.trust_client_key = str(cert.key_path)
    return Operator(name, domain, f"dr.{name}@{domain}", settings, cert, free_port(), free_port())


def _use_operator_certificate(op: Operator) -> None:
    """The MX and submission doors present the operator certificate (from the test CA)."""
    shutil.copy(op.cert.cert_path, op.settings.tls_dir / "server.crt")
    shutil.copy(op.cert.key_path, op.settings.tls_dir / "server.key")
    (op.settings.tls_dir / "server.key").chmod(0o600)


@pytest.fixture
def network(
    tmp_path: Path, test_dns: LocalDNS, backend: str, request: pytest.FixtureRequest
) -> Iterator[dict[str, Operator]]:
    pg = request.getfixturevalue("pg_cluster") if backend == "postgres" else None
    pki = TestPKI(tmp_path / "pki")
    crl_dir = tmp_path / "crl"
    crl_dir.mkdir()
    ops = {n: _operator(n, tmp_path, pki, test_dns, crl_dir, backend, pg) for n in ("a", "b", "c")}
    # Certificates for the refusal cases, all from the same CA.
    now = datetime.now(UTC)
    extra = {
        "expired": pki.issue(
            "b-expired",
            "localhost",
            "Opérateur B",
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(minutes=5),
        ),
        "revoked": pki.issue("b-revoked", "localhost", "Opérateur B"),
    }
    pki.revoke(extra["revoked"])
    (crl_dir / "ac.crl").write_bytes(pki.crl())
    listing = whitelist_xml([(ops[n].domain, ops[n].cert.dn) for n in ("a", "b")])
    for op in ops.values():
        op.settings.transport = {
            other.domain: TransportRoute("localhost", other.smtp_port, "opportunistic")
            for other in ops.values()
            if other is not op
        }
        prepare(
            op.settings,
            {
                "smtp": f"127.0.0.1:{op.smtp_port}",
                "submission": f"127.0.0.1:{op.submission_port}",
            },
        )
        _use_operator_certificate(op)
        op.settings.config_path.write_text(render_config(op.settings), "utf-8")
        asyncio.run(_setup(op, listing))
    network = dict(ops)
    network["pki"] = pki  # type: ignore[assignment]
    network["extra"] = extra  # type: ignore[assignment]
    procs = []
    with (
        serve_process(ops["a"].settings, tmp_path / "a") as pa,
        serve_process(ops["b"].settings, tmp_path / "b") as pb,
        serve_process(ops["c"].settings, tmp_path / "c") as pc,
    ):
        for op, proc in ((ops["a"], pa), (ops["b"], pb), (ops["c"], pc)):
            wait_listeners(op.settings, proc, tmp_path / op.name)
            procs.append(proc)
        yield network


def _tls_client(pki: TestPKI, cert: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_path))
    if cert is not None:
        context.load_cert_chain(cert.cert_path, cert.key_path)
    return context


def _submit(op: Operator, pki: TestPKI, to: str, subject: str) -> None:
    message = EmailMessage()
    message["From"] = op.user
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Compte rendu de consultation.")
    with smtplib.SMTP("127.0.0.1", op.submission_port, timeout=30) as client:
        client.starttls(context=_tls_client(pki))
        client.login(op.user, op.app_password)
        client.send_message(message)


async def _subjects(op: Operator) -> list[str]:
    from sqlalchemy import select

    async with open_app(op.settings) as app:
        box = await mailboxes.get_mailbox(app, op.user)
        async with app.db.read() as conn:
            ids = list(
                (
                    await conn.execute(
                        select(messages_table.c.id).where(messages_table.c.mailbox_id == box.id)
                    )
                ).scalars()
            )
        subjects = []
        for message_id in ids:
            raw = (await read_message(app, message_id))[1]
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            subjects.append(str(parsed["Subject"]))
        return subjects


def _wait_for(op: Operator, subject: str) -> list[str]:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while time.monotonic() < deadline:
        subjects = asyncio.run(_subjects(op))
        if any(subject in s for s in subjects):
            return subjects
        time.sleep(0.3)
    pytest.fail(f"{subject!r} not in {op.user}'s Inbox after {ARRIVAL_TIMEOUT}s")


async def _denials(op: Operator) -> list[str]:
    async with open_app(op.settings) as app:
        return [
            r.details
            async for r in iter_records(app.db)
            if r.action == "trust.inbound" and r.result == "denied"
        ]


def _mail_from_b(op: Operator, pki: TestPKI, cert: Issued | None, *, tls: bool = True) -> str:
    """A direct SMTP transaction to ``op``'s MX claiming B's domain; the reply to MAIL/RCPT."""
    with smtplib.SMTP("127.0.0.1", op.smtp_port, timeout=30) as client:
        client.ehlo("mx.b.mssante.test")
        if tls:
            client.starttls(context=_tls_client(pki, cert))
            client.ehlo("mx.b.mssante.test")
        code, text = client.mail("dr.b@b.mssante.test")
        if code == 250:
            code, text = client.rcpt(op.user)
        return f"{code} {text.decode()}"


def test_trust_space_between_three_operators(network: dict[str, Operator]) -> None:
    a, b, c = network["a"], network["b"], network["c"]
    pki: TestPKI = network["pki"]  # type: ignore[assignment]
    extra: dict[str, Issued] = network["extra"]  # type: ignore[assignment]

    _submit(a, pki, b.user, "A vers B")
    _wait_for(b, "A vers B")
    _submit(b, pki, a.user, "B vers A")
    _wait_for(a, "B vers A")

    # C is not listed: A refuses its mail (C's sender gets a bounce, A's Inbox stays clean).
    _submit(c, pki, a.user, "C vers A")
    _wait_for(c, "Non remis")
    assert not any("C vers A" in s for s in asyncio.run(_subjects(a)))

    # Direct sessions on A's MX claiming B's domain.
    wrong_dn = _mail_from_b(a, pki, c.cert)
    assert wrong_dn.startswith("550 5.7.1") and "liste blanche" in wrong_dn
    expired = _mail_from_b(a, pki, extra["expired"])
    assert expired.startswith("550 5.7.1") and "validite" in expired
    revoked = _mail_from_b(a, pki, extra["revoked"])
    assert revoked.startswith("550 5.7.1") and "revoque" in revoked
    plaintext = _mail_from_b(a, pki, None, tls=False)
    assert plaintext.startswith("530 5.7.10")
    genuine = _mail_from_b(a, pki, b.cert)
    assert genuine.startswith("250")

    # A's practitioner may not write outside the trust space, whatever the client.
    with smtplib.SMTP("127.0.0.1", a.submission_port, timeout=30) as client:
        client.starttls(context=_tls_client(pki))
        client.login(a.user, a.app_password)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(a.user, ["patient@gmail.test"], b"Subject: x\r\n\r\nx\r\n")
    code, text = refused.value.recipients["patient@gmail.test"]
    assert code == 550 and b"espace de confiance" in text

    reasons = " ".join(asyncio.run(_denials(a)))
    for reason in ("sender-outside", "dn-mismatch", "expired", "revoked", "plaintext"):
        assert reason in reasons
