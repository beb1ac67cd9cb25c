"""``caducee patient`` as an operator uses it: real processes, a CSV file with good and bad
rows, the report, exit codes."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.test_cli import caducee, init_installation

CSV = (
    "Nom;Prénom;Date de naissance;Email;Mobile;INS;Mode\r\n"
    "Durand;Paul;14/07/1985;paul.durand@patient-mail.test;06 12 34 56 78;185057800608491;\r\n"
    "Roux;Marie;31/02/1990;marie.roux@patient-mail.test;;;\r\n"
    "Petit;Léa;01/01/2001;paul.durand@patient-mail.test;;;\r\n"
    "Moreau;Jean;05/05/1955;jean.moreau@patient-mail.test;0123456789;;\r\n"
    "Martin;Éloïse;2002-02-02;eloise@patient-mail.test;+33 6 98 76 54 32;;pdf\r\n"
)


def test_import_list_show_verify_delete(tmp_path: Path) -> None:
    data = init_installation(tmp_path, "cabinet-patients.test")
    csv_file = tmp_path / "patients.csv"
    csv_file.write_bytes(CSV.encode("cp1252"))  # as a spreadsheet on Windows saves it
    result = caducee("patient", "import", "--practice", "1", str(csv_file), "--data", str(data))
    assert result.returncode == 1, result.stderr  # some rows were rejected
    assert "2 patient(s) importé(s), 3 ligne(s) rejetée(s)" in result.stdout
    assert "ligne 3 : Date de naissance invalide" in result.stdout
    assert "ligne 4 : L'adresse paul.durand@patient-mail.test est déjà" in result.stdout
    assert "ligne 5 : Ce numéro n'est pas un numéro de mobile" in result.stdout
    assert "━" not in result.stdout + result.stderr  # not a terminal: no progress bar
    listed = caducee("patient", "list", "--practice", "1", "--data", str(data))
    assert listed.returncode == 0 and "DURAND Paul" in listed.stdout
    assert "MARTIN Éloïse" in listed.stdout and "non vérifiée" in listed.stdout
    shown = caducee("patient", "show", "--practice", "1", "1", "--data", str(data))
    assert "+33612345678" in shown.stdout and "185057800608491" in shown.stdout
    sent = caducee("patient", "verify", "--practice", "1", "1", "--data", str(data))
    assert sent.returncode == 0 and "Lien de vérification envoyé" in sent.stdout
    assert "en attente" in caducee("patient", "list", "--practice", "1", "--data", str(data)).stdout
    other = caducee("patient", "show", "--practice", "2", "1", "--data", str(data))
    assert other.returncode != 0 and "introuvable" in other.stderr
    gone = caducee("patient", "delete", "--practice", "1", "2", "--data", str(data))
    assert gone.returncode == 0
    assert "MARTIN" not in caducee("patient", "list", "--practice", "1", "--data", str(data)).stdout


def test_bad_file_is_refused_whole(tmp_path: Path) -> None:
    data = init_installation(tmp_path, "cabinet-patients.test")
    csv_file = tmp_path / "patients.csv"
    csv_file.write_text("nom,prenom\r\nDurand,Paul\r\n", "utf-8")
    result = caducee("patient", "import", "--practice", "1", str(csv_file), "--data", str(data))
    assert result.returncode != 0 and "Colonnes obligatoires" in result.stderr


def in_terminal(*args: str) -> str:
    """``caducee ARGS`` writing to a pseudo-terminal, as in an operator's shell: all it wrote."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "caducee", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "CADUCEE_LANG": "fr", "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_import_shows_a_progress_bar_in_a_terminal(tmp_path: Path) -> None:
    """The shared progress bar (cli.common.progress_bar): drawn on a terminal, then erased;
    the report stays."""
    data = init_installation(tmp_path, "cabinet-patients.test")
    csv_file = tmp_path / "patients.csv"
    csv_file.write_bytes(CSV.encode("cp1252"))
    shown = in_terminal("patient", "import", "--practice", "1", str(csv_file), "--data", str(data))
    assert "Patients" in shown and "━" in shown
    assert "2 patient(s) importé(s), 3 ligne(s) rejetée(s)" in shown
