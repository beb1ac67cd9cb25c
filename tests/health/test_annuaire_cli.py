"""``caducee directory`` as an operator uses it — real processes, on both backends: import with
a progress bar and the refused lines by number, search, show, and clear French errors."""

from __future__ import annotations

from pathlib import Path

from bench.annuaire_gen import write

from caducee.app import App
from caducee.config import Settings
from tests.test_cli import caducee


def _env(settings: Settings) -> dict[str, str]:
    if settings.database_url:
        return {"CADUCEE_DATABASE_URL": settings.database_url, "CADUCEE_BLOB_STORE": "database"}
    return {}


async def test_import_search_show(app: App, settings: Settings, tmp_path: Path) -> None:
    data, env = str(settings.data_dir), _env(settings)
    missing = caducee("directory", "search", "dupont", "--data", data, env=env)
    assert missing.returncode == 1 and "caducee directory import" in missing.stderr
    path = tmp_path / "extraction-correspondance-mssante.txt"
    expected = write(path, 400, hostile_every=60)
    imported = caducee("directory", "import", str(path), "--data", data, env=env)
    assert imported.returncode == 0, imported.stderr
    assert f"401 adresses, {len(expected)} ligne(s) refusée(s)" in imported.stdout
    for line, _reason in expected:
        assert f"ligne {line} :" in imported.stdout
    assert "colonnes au lieu de 26" in imported.stdout and "UTF-8 invalide" in imported.stdout

    found = caducee("directory", "search", "tilleuls", "quimper", "--data", data, env=env)
    assert found.returncode == 0, found.stderr
    assert "accueil@clinique-guillemets.mssante.fr" in found.stdout
    assert 'Clinique "Les Tilleuls"' in found.stdout
    doctor = caducee("directory", "search", "Médecin", "--data", data, env=env)
    assert doctor.returncode == 0 and "Médecin" in doctor.stdout and "mssante.fr" in doctor.stdout
    nothing = caducee("directory", "search", "zzzzzz", "--data", data, env=env)
    assert nothing.returncode == 1 and "Aucun résultat" in nothing.stdout

    shown = caducee("directory", "show", "--data", data, env=env)
    assert shown.returncode == 0 and "401 adresses" in shown.stdout and str(path) in shown.stdout

    again = caducee("directory", "import", str(path), "--data", data, env=env)
    assert again.returncode == 0 and "L'annuaire précédent est remplacé" in again.stdout


async def test_errors_are_clear(app: App, settings: Settings, tmp_path: Path) -> None:
    data, env = str(settings.data_dir), _env(settings)
    neither = caducee("directory", "import", "--data", data, env=env)
    assert neither.returncode == 1 and "Indiquez un fichier ou --url" in neither.stderr
    absent = caducee("directory", "import", str(tmp_path / "absent.txt"), "--data", data, env=env)
    assert absent.returncode == 1 and "Lecture de" in absent.stderr
    other = tmp_path / "autre.csv"
    other.write_text("a;b;c\n1;2;3\n")
    refused = caducee("directory", "import", str(other), "--data", data, env=env)
    assert refused.returncode == 1 and "Adresse BAL" in refused.stderr
    english = caducee(
        "directory", "import", str(other), "--data", data, env={**env, "CADUCEE_LANG": "en"}
    )
    assert "not the MSSanté directory extraction" in english.stderr
    bad_url = caducee("directory", "import", "--url", "ftp://x.example/a.txt", "--data", data,
                      env=env)  # fmt: skip
    assert bad_url.returncode == 1 and "http(s)" in bad_url.stderr
