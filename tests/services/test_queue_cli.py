"""``caducee queue`` on an installation made by ``caducee init`` (both backends)."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from caducee.app import open_app
from caducee.cli import app as caducee_cli
from caducee.cli.setup import initialise
from caducee.config import Settings
from caducee.services import queue
from caducee.services.queue import QueueRecipient

ADMIN = "admin@cabinet.test"
RAW = b"From: admin@cabinet.test\r\nSubject: x\r\n\r\nbody\r\n"


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


def enqueue(settings: Settings, *recipients: str) -> int:
    async def go() -> int:
        async with open_app(settings) as app:
            return await queue.enqueue(app, RAW, ADMIN, [QueueRecipient(r) for r in recipients])

    return asyncio.run(go())


def entries(settings: Settings) -> list[queue.QueueEntry]:
    async def go() -> list[queue.QueueEntry]:
        async with open_app(settings) as app:
            return await queue.list_queue(app, include_finished=True)

    return asyncio.run(go())


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(caducee_cli, ["queue", *args], env={"CADUCEE_LANG": "fr"})
    return result.exit_code, result.stdout, result.stderr


def test_list_retry_delete(data: str, settings: Settings) -> None:
    code, out, err = invoke("list", "--data", data)
    assert code == 0, err
    assert "La file d'attente est vide." in out

    first = enqueue(settings, "a@partner.test", "b@partner.test")
    second = enqueue(settings, "c@autre.test")
    code, out, err = invoke("list", "--data", data)
    assert code == 0, err
    for header in ("ID", "Expéditeur", "Destinataire", "État", "Essais", "Prochain essai"):
        assert header in out
    assert "a@partner.test" in out and "c@autre.test" in out and "en attente" in out
    assert ADMIN in out and f"{first} " in out

    code, out, err = invoke("retry", str(second), "--data", data)
    assert code == 0, err
    assert "1 destinataire(s) à réessayer" in out
    code, out, _ = invoke("retry", "--all", "--data", data)
    assert code == 0 and "3 destinataire(s)" in out
    code, _, err = invoke("retry", "--data", data)
    assert code != 0 and "--all" in err

    code, out, err = invoke("delete", str(first), "--bounce", "--data", data)
    assert code == 0, err
    assert f"Message {first} retiré ; 2 destinataire(s) non remis" in out
    code, out, _ = invoke("list", "--data", data)
    assert "a@partner.test" not in out and "c@autre.test" in out
    code, out, _ = invoke("list", "--all", "--data", data)
    assert "a@partner.test" in out and "rejeté" in out

    code, out, err = invoke("delete", str(second), "--data", data)
    assert code == 0, err
    assert f"Message {second} supprimé" in out
    assert {e.message_id for e in entries(settings)} == {first}
    code, _, err = invoke("delete", str(second), "--data", data)
    assert code == 1 and f"Aucun message n° {second}" in err
