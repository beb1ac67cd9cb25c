"""``caducee trust`` and ``caducee doctor`` as an operator uses them: real processes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.health.whitelists import national_list
from tests.test_cli import caducee, init_installation


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_installation(tmp_path_factory.mktemp("trust"))


def test_import_show_lookup_and_doctor(installation: Path, tmp_path: Path) -> None:
    data = str(installation)
    doctor = caducee("doctor", "--data", data)
    assert "aucune liste blanche MSSanté" in doctor.stdout
    missing = caducee("trust", "show", "--data", data)
    assert missing.returncode == 1 and "caducee trust import" in missing.stderr

    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    listing = national_list(2000, generated=generated)
    path = tmp_path / "liste.xml"
    path.write_bytes(listing)
    checksum = tmp_path / "liste.xml.sha256"
    checksum.write_text(f"{hashlib.sha256(listing).hexdigest()}  liste.xml\n")
    imported = caducee("trust", "import", str(path), "--checksum", str(checksum), "--data", data)
    assert imported.returncode == 0, imported.stderr
    assert "2000 domaines, 2200 certificats" in imported.stdout

    shown = caducee("trust", "show", "--data", data)
    assert shown.returncode == 0 and "2000 domaines" in shown.stdout
    found = caducee("trust", "lookup", "etab30.mssante.fr", "--data", data)
    assert found.returncode == 0 and "mx30.operateur30.fr" in found.stdout
    absent = caducee("trust", "lookup", "inconnu.fr", "--data", data)
    assert absent.returncode == 1 and "n'est pas dans l'espace de confiance" in absent.stdout
    doctor = caducee("doctor", "--data", data)
    assert "liste blanche MSSanté du" in doctor.stdout


def test_stale_list_warns(installation: Path, tmp_path: Path) -> None:
    old = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S")
    path = tmp_path / "vieille.xml"
    path.write_bytes(national_list(10, generated=old))
    assert caducee("trust", "import", str(path), "--data", str(installation)).returncode == 0
    shown = caducee("trust", "show", "--data", str(installation))
    assert shown.returncode == 2 and "à rafraîchir" in shown.stdout
    assert "périmée" in caducee("doctor", "--data", str(installation)).stdout


def test_bad_file_and_bad_checksum_are_refused_clearly(installation: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'e'>]><x>&e;</x>")
    refused = caducee("trust", "import", str(bad), "--data", str(installation))
    assert refused.returncode == 1 and "DTD, entités" in refused.stderr
    good = tmp_path / "good.xml"
    good.write_bytes(national_list(5))
    wrong = tmp_path / "wrong.sha256"
    wrong.write_text("0" * 64)
    refused = caducee(
        "trust", "import", str(good), "--checksum", str(wrong), "--data", str(installation)
    )
    assert refused.returncode == 1 and "ne correspond pas" in refused.stderr
    absent = caducee("trust", "import", str(tmp_path / "absent.xml"), "--data", str(installation))
    assert absent.returncode == 1 and "impossible" in absent.stderr
