"""``caducee api-token`` through real processes: create (printed once), list, revoke, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import caducee, init_installation


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_installation(tmp_path_factory.mktemp("api-cli"))


def test_create_list_revoke(installation: Path) -> None:
    data = str(installation)
    created = caducee(
        "api-token", "create", "admin@cabinet.fr", "--label", "Logiciel", "--mailbox",
        "admin@cabinet.fr", "--scope", "lecture", "--data", data,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("cdc_") and len(token) > 40
    listed = caducee("api-token", "list", "admin@cabinet.fr", "--data", data)
    assert "Logiciel" in listed.stdout and token not in listed.stdout and "actif" in listed.stdout
    assert caducee("api-token", "revoke", "admin@cabinet.fr", "1", "--data", data).returncode == 0
    assert "révoqué" in caducee("api-token", "list", "admin@cabinet.fr", "--data", data).stdout
    again = caducee("api-token", "revoke", "admin@cabinet.fr", "1", "--data", data)
    assert again.returncode == 1 and "déjà révoqué" in again.stderr
    bad = caducee(
        "api-token", "create", "admin@cabinet.fr", "--label", "X", "--mailbox",
        "admin@cabinet.fr", "--scope", "tout", "--data", data,
    )  # fmt: skip
    assert bad.returncode == 1 and "lecture, marquage" in bad.stderr
