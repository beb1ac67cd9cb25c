"""``caducee triage --practice ID`` on an installation made by ``caducee init`` (both backends):
the practice's saved triage settings (renamed, disabled and added types) are the ones used."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from caducee.app import open_app
from caducee.cli import app as caducee_cli
from caducee.cli.setup import initialise
from caducee.config import Settings
from caducee.domain.triage_settings import from_dict
from caducee.health import patient_triage
from caducee.services import practices

runner = CliRunner()
MESSAGE = b"Subject: question\r\n\r\nBonjour, quand puis-je faire mon vaccin contre la grippe ?\r\n"


def test_triage_uses_the_practice_settings(settings: Settings, tmp_path: Path) -> None:
    async def setup() -> int:
        await initialise(
            settings,
            practice_name="Cabinet Test",
            domain="cabinet.test",
            admin_login="admin@cabinet.test",
            admin_password="Correct-Horse-42-Battery",
        )
        async with open_app(settings) as app:
            [practice] = await practices.list_practices(app)
            rules = from_dict(
                {
                    "types": [
                        {"id": "conseil", "enabled": False},
                        {"id": "vaccins", "label_fr": "Vaccins", "keywords": ["vaccin"]},
                        {"id": "rendez-vous", "label_fr": "RDV", "label_en": "Appointments"},
                    ]
                }
            )
            await patient_triage.save(app, practice.id, rules, actor="admin", source="test")
            return practice.id

    practice_id = asyncio.run(setup())
    eml = tmp_path / "m.eml"
    eml.write_bytes(MESSAGE)
    data = ["--data", str(settings.data_dir)]
    saved = runner.invoke(caducee_cli, ["triage", "--practice", str(practice_id), *data, str(eml)])
    assert saved.exit_code == 0, saved.output
    out = json.loads(saved.stdout)
    assert out["type"] == "vaccins" and out["type_label"] == "Vaccins"
    # Without a practice: the default types (conseil would win, « vaccins » is unknown).
    default = runner.invoke(caducee_cli, ["triage", str(eml)])
    assert json.loads(default.stdout)["type"] == "conseil"
    unknown = runner.invoke(caducee_cli, ["triage", "--practice", "999", *data, str(eml)])
    assert unknown.exit_code == 1 and "999" in unknown.output
