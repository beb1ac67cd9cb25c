"""``caducee app-password`` on an installation made by ``caducee init`` (both backends)."""

from __future__ import annotations

import asyncio
import re

import pytest
from typer.testing import CliRunner

from caducee.app import open_app
from caducee.cli import app as caducee_cli
from caducee.cli.setup import initialise
from caducee.config import Settings
from caducee.services.app_passwords import ALPHABET
from caducee.services.auth import authenticate_mail

ADMIN = "admin@cabinet.test"
FORMAT = re.compile(rf"^[{ALPHABET}]{{7}}(-[{ALPHABET}]{{7}}){{3}}$")


@pytest.fixture
def data(settings: Settings) -> str:
    asyncio.run(
        initialise(
            settings,
            practice_name="Cabinet Test",
            domain="cabinet.test",
            admin_login=ADMIN,
            admin_password="Correct-Horse-42-Battery",
        )
    )
    return str(settings.data_dir)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(caducee_cli, ["app-password", *args], env={"CADUCEE_LANG": "fr"})
    return result.exit_code, result.stdout, result.stderr


def authenticates(settings: Settings, password: str, service: str) -> bool:
    async def go() -> bool:
        async with open_app(settings) as app:
            try:
                await authenticate_mail(app, ADMIN, password, service, "127.0.0.1")  # type: ignore[arg-type]
            except Exception:
                return False
            return True

    return asyncio.run(go())


def test_create_list_revoke(data: str, settings: Settings) -> None:
    code, out, err = invoke(
        "create",
        ADMIN,
        "--label",
        "Thunderbird [cabinet]",
        "--scope",
        "imap",
        "--scope",
        "smtp",
        "--data",
        data,
    )
    assert code == 0, err
    password = out.strip()
    assert out == password + "\n" and FORMAT.match(password)  # the password alone on stdout
    assert "une seule fois" in err
    assert authenticates(settings, password, "imap")
    assert not authenticates(settings, password, "pop3")

    code, out, err = invoke("list", ADMIN, "--data", data)
    assert code == 0, err
    for header in ("N°", "Libellé", "Protocoles", "Créé le", "Dernière utilisation", "État"):
        assert header in out
    assert "Thunderbird [cabinet]" in out and "imap, smtp" in out and "actif" in out
    assert password not in out

    code, out, err = invoke("revoke", ADMIN, "1", "--data", data)
    assert code == 0, err
    assert "révoqué" in out
    assert not authenticates(settings, password, "imap")
    code, out, _ = invoke("list", ADMIN, "--data", data)
    assert "révoqué le" in out


def test_errors_are_clear(data: str) -> None:
    code, out, err = invoke("create", ADMIN, "--label", "x" * 101, "--data", data)
    assert code == 1 and out == ""
    assert "Libellé trop long" in err
    code, out, err = invoke("create", ADMIN, "--label", "ok", "--scope", "ftp", "--data", data)
    assert code == 1 and "Protocole inconnu" in err
    code, _, err = invoke("revoke", ADMIN, "42", "--data", data)
    assert code == 1 and "n° 42" in err
    code, _, err = invoke("list", "nobody@cabinet.test", "--data", data)
    assert code == 1 and "introuvable" in err
    code, out, _ = invoke("list", ADMIN, "--data", data)
    assert code == 0 and "Aucun mot de passe d'application" in out
