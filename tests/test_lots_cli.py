"""``caducee lots`` on an installation made by ``caducee init`` (both backends): the operator's
list of every TLT mailbox's lots, filters, CSV, returns, insurer domains."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest
from typer.testing import CliRunner

from caducee.app import open_app
from caducee.cli import app as caducee_cli
from caducee.cli.setup import initialise
from caducee.config import Settings
from caducee.domain.model import MailboxType
from caducee.services import mailboxes
from tests.health.lots_seed import Seeded, seed
from tests.services.helpers import person

ADMIN = "admin@cabinet.test"
TLT = "tlt@cabinet.test"


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


@pytest.fixture
def seeded(data: str, settings: Settings) -> Seeded:
    async def go() -> Seeded:
        async with open_app(settings) as app:
            await person(app, "dr@cabinet.test")
            await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, "dr@cabinet.test")
            await mailboxes.add_mailbox(app, "tlt2@cabinet.test", MailboxType.TLT, ADMIN)
            return await seed(app, TLT)

    return asyncio.run(go())


def invoke(*args: str, lang: str = "fr") -> tuple[int, str, str]:
    result = CliRunner().invoke(caducee_cli, ["lots", *args], env={"CADUCEE_LANG": lang})
    return result.exit_code, result.stdout, result.stderr


def test_list_every_mailbox_filter_and_csv(data: str, seeded: Seeded) -> None:
    code, out, err = invoke("list", "--data", data)
    assert code == 0, err
    for header in ("Boîte", "N° émetteur", "Compostage", "Organisme", "État", "Retours"):
        assert header in out
    assert TLT in out and seeded.late.compostage in out
    assert "sans ARL après 2 jours ouvrés" in out and "ARL positif" in out
    assert "3 lot(s) à réémettre" in out

    code, out, err = invoke("list", "--state", "arl_negatif", "--data", data)
    assert code == 0, err
    assert seeded.rejected.compostage in out and seeded.late.compostage not in out

    code, out, _ = invoke("list", "--mailbox", "tlt2@cabinet.test", "--data", data)
    assert code == 0 and "Aucun lot." in out
    code, out, _ = invoke("list", "--practice", "1", "--state", "reemis", "--data", data)
    assert code == 0 and seeded.resent.compostage in out

    code, out, err = invoke("list", "--csv", "--since", "2020-01-01", "--data", data)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] == "boîte" and len(rows) == 8
    assert {r[2] for r in rows[1:]} >= {seeded.late.compostage, seeded.fresh.compostage}
    code, out, _ = invoke("list", "--csv", "--state", "non_remis", "--data", data, lang="en")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] == "mailbox" and [r[7] for r in rows[1:]] == ["not delivered: send again"]


def test_refusals(data: str, seeded: Seeded) -> None:
    code, _, err = invoke("list", "--state", "perdu", "--data", data)
    assert code == 1 and "État de lot inconnu « perdu »" in err
    code, _, err = invoke("list", "--since", "hier", "--data", data)
    assert code == 1 and "AAAA-MM-JJ" in err
    code, _, err = invoke("list", "--mailbox", ADMIN, "--data", data)
    assert code == 1 and "n'est pas une boîte de télétransmission" in err
    code, _, err = invoke("list", "--mailbox", "nul@cabinet.test", "--data", data)
    assert code == 1 and "Aucune boîte nul@cabinet.test" in err


def test_returns(data: str, seeded: Seeded) -> None:
    code, out, err = invoke("returns", "--data", data)
    assert code == 0, err
    assert "ARL positif" in out and "ARL négatif" in out and "NOEMIE" in out
    assert "retour non reconnu" in out and "non rapproché" in out
    code, out, _ = invoke("returns", "--unmatched", "--data", data)
    assert code == 0 and "retour non reconnu" in out and "ARL" not in out
    code, out, _ = invoke("returns", "--mailbox", "tlt2@cabinet.test", "--data", data)
    assert code == 0 and "Aucun retour." in out


def test_insurer_domains(data: str) -> None:
    code, out, err = invoke("insurer", "list", "--practice", "1", "--data", data)
    assert code == 0, err
    assert "*.rss.fr" in out and "configuration (par défaut)" in out
    code, out, err = invoke("insurer", "add", "--practice", "1", "*.Mutuelle.test", "--data", data)
    assert code == 0, err
    assert "peuvent écrire à *.mutuelle.test" in out
    code, _, err = invoke("insurer", "add", "--practice", "1", "*.mutuelle.test", "--data", data)
    assert code == 1 and "déjà autorisé" in err
    code, _, err = invoke("insurer", "add", "--practice", "1", "*", "--data", data)
    assert code == 1 and "Domaine d'organisme invalide" in err
    code, _, err = invoke("insurer", "add", "--practice", "9", "x.test", "--data", data)
    assert code == 1 and "Cabinet n° 9 introuvable" in err
    code, out, _ = invoke("insurer", "list", "--practice", "1", "--data", data)
    assert "*.mutuelle.test" in out and "ajouté par le cabinet" in out
    code, out, err = invoke(
        "insurer", "remove", "--practice", "1", "*.mutuelle.test", "--data", data
    )
    assert code == 0, err
    code, _, err = invoke("insurer", "remove", "--practice", "1", "*.rss.fr", "--data", data)
    assert code == 1 and "n'a pas ajouté le domaine" in err
    code, out, _ = invoke("insurer", "list", "--practice", "1", "--data", data)
    assert "mutuelle" not in out
