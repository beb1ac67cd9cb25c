"""The command line as an operator's script uses it: real processes, exit codes, French errors."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from caducee.app import open_app
from caducee.config import load_settings
from caducee.services import maildrop

STRONG = "Tr3s-Bon-Motdepasse!"


def caducee(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CADUCEE_LANG": "fr", **(env or {})},
    )


def init_installation(base: Path, domain: str = "cabinet.fr", *extra: str) -> Path:
    """``caducee init`` of a fresh installation in ``base/data`` (dev ports)."""
    data = base / "data"
    result = caducee(
        "init", "--data", str(data), "--domain", domain, "--practice", "Cabinet", "--dev-ports",
        *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli") / "data"
    result = caducee(
        "init",
        "--data",
        str(data),
        "--domain",
        "cabinet-exemple.fr",
        "--practice",
        "Cabinet Exemple",
        "--dev-ports",
        "--mailbox-limit",
        "4",
    )
    assert result.returncode == 0, result.stderr
    assert "admin@cabinet-exemple.fr" in result.stdout
    return data


def test_init_creates_a_private_installation(installation: Path) -> None:
    assert (installation / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    assert (installation / "keys").stat().st_mode & 0o777 == 0o700
    assert (installation / "tls" / "server.key").stat().st_mode & 0o777 == 0o600
    assert (installation / "db.sqlite3").stat().st_mode & 0o007 == 0
    settings = load_settings(installation)
    ports = {int(a.rsplit(":", 1)[1]) for a in settings.listeners.values()}
    assert len(ports) == len(settings.listeners) == 8 and all(p > 1024 for p in ports)
    assert all(a.startswith("127.0.0.1:") for a in settings.listeners.values())
    # The development certificate names where mail clients fetch their configuration.
    leaf = x509.load_pem_x509_certificates((installation / "tls" / "server.crt").read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"autoconfig.cabinet-exemple.fr", "autodiscover.cabinet-exemple.fr"} <= set(
        names.get_values_for_type(x509.DNSName)
    )
    again = caducee("init", "--data", str(installation), "--domain", "x.fr", "--practice", "X")
    assert again.returncode == 1 and "existe déjà" in again.stderr


def test_user_mailbox_and_app_password_commands(installation: Path) -> None:
    data = ["--data", str(installation)]
    added = caducee(
        "user",
        "add",
        *data,
        "dr.martin@cabinet-exemple.fr",
        "--name",
        "Jeanne Martin",
        "--role",
        "praticien",
        "--rpps",
        "10001234565",
        "--password-stdin",
        stdin=STRONG + "\n",
    )
    assert added.returncode == 0, added.stderr
    box = caducee(
        "mailbox",
        "add",
        *data,
        "tlt@cabinet-exemple.fr",
        "--type",
        "TLT",
        "--owner",
        "dr.martin@cabinet-exemple.fr",
    )
    assert box.returncode == 0, box.stderr
    created = caducee(
        "app-password", "create", *data, "dr.martin@cabinet-exemple.fr", "--label", "Thunderbird"
    )
    assert created.returncode == 0, created.stderr
    password = created.stdout.strip()
    assert "\n" not in password and len(password.replace("-", "")) >= 20
    listed = caducee("app-password", "list", *data, "dr.martin@cabinet-exemple.fr")
    assert "Thunderbird" in listed.stdout and password not in listed.stdout
    users = caducee("user", "list", *data)
    assert "dr.martin@cabinet-exemple.fr" in users.stdout and "10001234565" in users.stdout
    boxes = caducee("mailbox", "list", *data)
    assert "tlt@cabinet-exemple.fr" in boxes.stdout and "TLT" in boxes.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (
            [
                "user",
                "add",
                "x@cabinet-exemple.fr",
                "--name",
                "X Y",
                "--rpps",
                "10001234566",
                "--password-stdin",
            ],
            STRONG,
            "clé de contrôle",
        ),
        (
            ["user", "add", "admin@cabinet-exemple.fr", "--name", "X Y", "--password-stdin"],
            STRONG,
            "existe déjà",
        ),
        (
            ["user", "add", "x@inconnu.fr", "--name", "X Y", "--password-stdin"],
            STRONG,
            "Domaine inconnu",
        ),
        (
            ["user", "add", "x@cabinet-exemple.fr", "--name", "X Y", "--password-stdin"],
            "court",
            "trop faible",
        ),
        (
            [
                "user",
                "add",
                "x@cabinet-exemple.fr",
                "--name",
                "X Y",
                "--role",
                "chef",
                "--password-stdin",
            ],
            STRONG,
            "Rôle inconnu",
        ),
        (
            [
                "mailbox",
                "add",
                "m@cabinet-exemple.fr",
                "--type",
                "XYZ",
                "--owner",
                "admin@cabinet-exemple.fr",
            ],
            "",
            "Type de boîte inconnu",
        ),
        (["mailbox", "quota", "admin@cabinet-exemple.fr", "beaucoup"], "", "Taille invalide"),
        (["audit", "export", "--format", "xml"], "", "Format d'export inconnu"),
    ],
)
def test_bad_input_gets_a_clear_french_error(
    installation: Path, args: list[str], stdin: str, expected: str
) -> None:
    result = caducee(*args[:2], "--data", str(installation), *args[2:], stdin=stdin + "\n")
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_mailbox_limit_of_the_practice(installation: Path) -> None:
    data = ["--data", str(installation)]
    owner = ["--owner", "admin@cabinet-exemple.fr"]
    while True:  # fill up to the limit (4 in this installation)
        shown = caducee("practice", "show", *data)
        used, limit = shown.stdout.split("boîtes : ")[1].split()[0].split("/")
        if used == limit:
            break
        assert (
            caducee(
                "mailbox", "add", *data, f"org{used}@cabinet-exemple.fr", "--type", "ORG", *owner
            ).returncode
            == 0
        )
    refused = caducee("mailbox", "add", *data, "trop@cabinet-exemple.fr", "--type", "ORG", *owner)
    assert refused.returncode == 1 and "limite de 4 boîtes" in refused.stderr


def test_audit_verify_and_tamper_detection(installation: Path, tmp_path: Path) -> None:
    data = ["--data", str(installation)]
    ok = caducee("audit", "verify", *data)
    assert ok.returncode == 0 and "Journal intègre" in ok.stdout
    exported = caducee("audit", "export", *data, "--format", "json", "-o", str(tmp_path / "a.json"))
    assert exported.returncode == 0 and (tmp_path / "a.json").read_text().startswith("[")
    import sqlite3

    db = sqlite3.connect(installation / "db.sqlite3")
    db.execute("UPDATE audit_log SET actor = 'intrus' WHERE seq = 2")
    db.commit()
    db.close()
    bad = caducee("audit", "verify", *data)
    assert bad.returncode == 2 and "n° 2" in bad.stderr and "modifié" in bad.stderr


def test_audit_verify_reports_a_truncated_tail(tmp_path: Path) -> None:
    installation = tmp_path / "d"
    data = ["--data", str(installation)]
    made = caducee("init", *data, "--domain", "trunc.fr", "--practice", "T", "--dev-ports")
    assert made.returncode == 0, made.stderr
    ok = caducee("audit", "verify", *data)
    assert ok.returncode == 0 and "Journal intègre" in ok.stdout
    import sqlite3

    db = sqlite3.connect(installation / "db.sqlite3")
    last = db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    db.execute("DELETE FROM audit_log WHERE seq = ?", (last,))
    db.commit()
    db.close()
    bad = caducee("audit", "verify", *data)
    assert bad.returncode == 2
    assert "fin du journal manquante" in bad.stderr and f"n° {last}" in bad.stderr


def test_doctor_reports_healthy_then_bad_key_permissions(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert (
        caducee(
            "init", "--data", str(data), "--domain", "doc.fr", "--practice", "D", "--dev-ports"
        ).returncode
        == 0
    )
    healthy = caducee("doctor", "--data", str(data))
    assert healthy.returncode == 0, healthy.stdout
    assert "schéma à jour" in healthy.stdout and "certificat TLS valide" in healthy.stdout
    (data / "keys" / "master.key").chmod(0o644)
    sick = caducee("doctor", "--data", str(data))
    assert sick.returncode == 1 and "chmod 600" in sick.stdout
    refused = caducee("user", "list", "--data", str(data))
    assert refused.returncode == 1 and "chmod 600" in refused.stderr


def test_english_messages_are_available(installation: Path) -> None:
    result = caducee(
        "user",
        "add",
        "--data",
        str(installation),
        "x@inconnu.fr",
        "--name",
        "X",
        "--password-stdin",
        stdin=STRONG,
        env={"CADUCEE_LANG": "en"},
    )
    assert result.returncode == 1 and "Unknown domain" in result.stderr


@pytest.mark.parametrize(
    "group",
    [
        "",
        "init",
        "serve",
        "demo",
        "doctor",
        "user",
        "user add",
        "mailbox",
        "mailbox delegate",
        "mailbox reindex",
        "practice",
        "app-password",
        "keys",
        "keys rotate",
        "audit",
        "audit export",
        "backup",
        "backup verify",
        "backup key create",
        "restore",
        "export",
        "export mailbox",
        "patient export",
        "patient erase",
    ],
)
def test_help_everywhere(group: str) -> None:
    result = caducee(*group.split(), "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_keys_rotate_on_a_live_installation(tmp_path: Path) -> None:
    data = tmp_path / "k"
    assert (
        caducee("init", "--data", str(data), "--domain", "k.fr", "--practice", "K").returncode == 0
    )
    before = (data / "keys" / "master.key").read_text()
    rotated = caducee("keys", "rotate", "--data", str(data))
    assert rotated.returncode == 0, rotated.stderr
    assert "rechiffrée" in rotated.stdout and (data / "keys" / "master.key").read_text() != before
    assert caducee("doctor", "--data", str(data)).returncode == 0


def test_demo_creates_a_complete_practice(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    created = caducee("demo", "--data", str(data), "--no-serve")
    assert created.returncode == 0, created.stderr
    assert "dr.martin@cabinet-demo.test" in created.stdout
    assert (data / "demo-logins.txt").stat().st_mode & 0o777 == 0o600
    demo_settings = load_settings(data)  # SMS go to a file: allowed in development only
    assert (demo_settings.deployment, demo_settings.sms_provider) == ("development", "fichier")
    boxes = caducee("mailbox", "list", "--data", str(data)).stdout
    for address, kind in (("accueil@", "ORG"), ("tlt.martin@", "TLT"), ("logiciel@", "APP")):
        assert f"{address}cabinet-demo.test" in boxes and kind in boxes
    delegations = caducee("mailbox", "delegations", "--data", str(data)).stdout
    assert "secretariat@cabinet-demo.test" in delegations and "envoi" in delegations
    again = caducee("demo", "--data", str(data), "--no-serve")  # reuses, never re-creates
    assert again.returncode == 0 and again.stdout.count("dr.martin@cabinet-demo.test") >= 1
    # A second factor is required for the webmail: the first login shows the QR code.
    assert "QR" in created.stdout and "mot de passe d'application" in created.stdout
    shown = caducee("practice", "show", "--data", str(data)).stdout
    assert "second facteur : exigé" in shown
    lifted = caducee("practice", "update", "--data", str(data), "--no-second-factor")
    assert lifted.returncode == 0 and "second facteur : facultatif" in lifted.stdout
    exported = caducee("audit", "export", "--data", str(data)).stdout
    assert "practice.require_second_factor" in exported
    assert caducee("audit", "verify", "--data", str(data)).returncode == 0


def test_migrate_conceals_addresses_stored_in_clear(tmp_path: Path) -> None:
    """Revision 0019 needs the master key to pseudonymise older trace rows: ``migrate`` does."""
    import sqlite3

    data = init_installation(tmp_path)
    database = sqlite3.connect(data / "db.sqlite3")
    with database:
        mailbox_id = database.execute("SELECT min(id) FROM mailboxes").fetchone()[0]
        database.execute(
            "INSERT INTO message_trace (mailbox_id, trace_key, recipient, event, detail, ts) "
            "VALUES (?, ?, 'patient.durand@exemple.test', 'delivered', '', '2026-01-05')",
            (mailbox_id, "0" * 64),
        )
    result = caducee("migrate", "--data", str(data))
    assert result.returncode == 0, result.stderr
    with database:
        rows = database.execute(
            "SELECT recipient, recipient_key, recipient_sealed FROM message_trace"
        ).fetchall()
    database.close()
    assert [(r[0], len(r[1]), r[2] is not None) for r in rows] == [("", 64, True)]


DEMO_PORT_LINE = re.compile(r"^  (\w+)\s+(?:https://)?127\.0\.0\.1:(\d+)/?$", re.M)


def test_demo_shows_every_channel_and_keeps_its_ports(tmp_path: Path) -> None:
    """A newcomer's demo: a message between colleagues, a verified patient with a message
    waiting on the portal (its link printed), a lot and its ARL; the ports printed are those
    kept in caducee.toml, the same at the next start."""
    data = tmp_path / "demo"
    first = caducee("demo", "--data", str(data), "--no-serve")
    assert first.returncode == 0, first.stderr
    ports = DEMO_PORT_LINE.findall(first.stdout)
    assert len(ports) == 8
    configured = load_settings(data).listeners
    assert {name: f"127.0.0.1:{port}" for name, port in ports} == configured
    second = caducee("demo", "--data", str(data), "--no-serve")
    assert second.returncode == 0, second.stderr
    assert (
        re.findall(r"^  (\w+)\s+(?:https://)?127\.0\.0\.1:(\d+)/?$", second.stdout, re.M) == ports
    )
    assert load_settings(data).listeners == configured
    # The patient portal: the link opens on this machine (the certificate names localhost).
    https = dict(ports)["https"]
    assert re.search(rf"https://localhost:{https}/portail/[\w-]{{40,}}", first.stdout)
    patients = caducee("patient", "list", "--practice", "1", "--data", str(data)).stdout
    assert "DURAND Paul" in patients and "vérifiée" in patients
    lots = caducee("lots", "list", "--data", str(data)).stdout
    assert "tlt.martin@cabinet-demo.test" in lots and "ARL positif" in lots
    # Nothing waits to go to the fictitious patient's address.
    assert "vide" in caducee("queue", "list", "--data", str(data)).stdout

    async def inbox_subjects() -> list[str]:
        async with open_app(load_settings(data)) as app:
            drop = await maildrop.open_maildrop(app, "dr.martin@cabinet-demo.test", "test")
            return [
                (await maildrop.retrieve(app, drop, m))
                .split(b"Subject: ", 1)[1]
                .split(b"\n")[0]
                .decode()
                .strip()
                for m in drop.messages
            ]

    assert "Pansement de M. Durand" in asyncio.run(inbox_subjects())
