"""Long CLI work shows the shared progress bar on a terminal (issue 21: « imports, reindexing,
backups »): the whitelist and the national directory imports, a backup and its restore, a
mailbox export. Each command runs twice as an operator would: in a terminal (a pseudo-terminal:
the bar is drawn, then erased, the report stays) and piped (a script, cron: the report only).
``caducee patient import`` and ``caducee mailbox reindex`` are checked in their own files
(tests/test_patient_cli.py, tests/test_reindex_cli.py)."""

from __future__ import annotations

import asyncio
import hashlib
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from bench.annuaire_gen import write

from caducee.app import open_app
from caducee.config import load_settings
from caducee.services.delivery import deliver_local
from tests.health.whitelists import national_list
from tests.test_cli import caducee, init_installation
from tests.test_patient_cli import in_terminal

ADMIN = "admin@cabinet-progres.test"
BAR = "━"  # rich's bar


def both(*args: str) -> tuple[str, str]:
    """What ``caducee ARGS`` shows in a terminal, then what it prints when piped (both must
    succeed)."""
    shown = in_terminal(*args)
    piped = caducee(*args)
    assert piped.returncode == 0, piped.stdout + piped.stderr
    return shown, piped.stdout + piped.stderr


def test_long_commands_show_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    data = init_installation(tmp_path, "cabinet-progres.test")

    async def fill() -> None:
        async with open_app(load_settings(data)) as app:
            for n in range(30):
                body = "".join(f"ligne {k} du compte rendu {n}\r\n" for k in range(200))
                raw = f"From: labo@ailleurs.test\r\nSubject: cr {n}\r\n\r\n{body}".encode()
                await deliver_local(app, raw, [ADMIN], source="t")

    asyncio.run(fill())

    listing = national_list(500, generated=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    whitelist = tmp_path / "liste.xml"
    whitelist.write_bytes(listing)
    checksum = tmp_path / "liste.xml.sha256"
    checksum.write_text(f"{hashlib.sha256(listing).hexdigest()}  liste.xml\n")
    shown, piped = both(
        "trust", "import", str(whitelist), "--checksum", str(checksum), "--data", str(data)
    )
    assert "Liste blanche" in shown and BAR in shown, shown
    assert "500 domaines" in piped and BAR not in piped

    extraction = tmp_path / "extraction-correspondance-mssante.txt"
    write(extraction, 300)
    shown, piped = both("directory", "import", str(extraction), "--data", str(data))
    assert "Annuaire" in shown and BAR in shown and "Annuaire importé" in shown, shown
    assert "Annuaire importé" in piped and BAR not in piped

    shown = in_terminal("export", "mailbox", ADMIN, "--to", str(tmp_path / "a.zip"), "--data",
                        str(data))  # fmt: skip
    assert "Export" in shown and BAR in shown and "30 message(s)" in shown, shown
    piped_export = caducee("export", "mailbox", ADMIN, "--to", str(tmp_path / "b.zip"),
                           "--data", str(data))  # fmt: skip
    assert "30 message(s)" in piped_export.stdout and BAR not in piped_export.stdout
    assert len(zipfile.ZipFile(tmp_path / "a.zip").namelist()) > 1

    key = tmp_path / "backup-key.txt"
    created = caducee("backup", "key", "create", "--data", str(data), "--out", str(key))
    assert created.returncode == 0, created.stderr
    shown = in_terminal("backup", "--to", str(tmp_path / "archives"), "--data", str(data))
    assert "Sauvegarde" in shown and BAR in shown and "Archive écrite" in shown, shown
    piped_backup = caducee("backup", "--to", str(tmp_path / "archives2"), "--data", str(data))
    assert "Archive écrite" in piped_backup.stdout and BAR not in piped_backup.stdout

    shown = in_terminal("restore", "--from", str(tmp_path / "archives"), "--data",
                        str(tmp_path / "restored"), "--key", str(key))  # fmt: skip
    assert "Restauration" in shown and BAR in shown, shown
    assert (tmp_path / "restored" / "keys" / "master.key").exists()
    piped_restore = caducee("restore", "--from", str(tmp_path / "archives2"), "--data",
                            str(tmp_path / "restored2"), "--key", str(key))  # fmt: skip
    assert piped_restore.returncode == 0, piped_restore.stdout + piped_restore.stderr
    assert BAR not in piped_restore.stdout + piped_restore.stderr
