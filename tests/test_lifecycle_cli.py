"""``caducee mailbox disable|enable|delete`` and ``caducee user delete`` (issue 19): the
address typed again or ``--yes``; the ``[lifecycle]`` setting read and checked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from caducee.app import open_app
from caducee.config import Settings, load_settings, render_config
from caducee.domain.inactivity import add_months
from caducee.domain.model import MailboxType, Role
from caducee.errors import ConfigurationError, NotFound
from caducee.services import accounts, mailboxes
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare

OWNER = "dr@cabinet.test"
SHARED = "accueil@cabinet.test"


def caducee(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", *args, "--data", str(settings.data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=False,
    )


def test_delete_asks_for_the_address_again(settings: Settings) -> None:
    prepare(settings, {})

    async def setup() -> None:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, "admin@cabinet.test", Role.ADMIN)
            await person(app, OWNER)
            await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)

    asyncio.run(setup())
    assert caducee(settings, "mailbox", "disable", SHARED).returncode == 0
    listing = caducee(settings, "mailbox", "list")
    assert "désactivée" in listing.stdout, listing.stdout
    assert caducee(settings, "mailbox", "enable", SHARED).returncode == 0
    refused = caducee(settings, "mailbox", "delete", SHARED, stdin="accueil@autre.test\n")
    assert refused.returncode != 0 and "saisissez l'adresse" in refused.stdout + refused.stderr
    done = caducee(settings, "mailbox", "delete", SHARED, stdin=f"{SHARED}\n")
    assert done.returncode == 0 and "supprimée" in done.stdout, done.stdout + done.stderr
    personal = caducee(settings, "mailbox", "delete", OWNER, "--yes")
    assert personal.returncode != 0 and "caducee user delete" in personal.stdout + personal.stderr
    gone = caducee(settings, "user", "delete", OWNER, "--yes")
    assert gone.returncode == 0, gone.stdout + gone.stderr

    async def check() -> None:
        async with open_app(settings) as app:
            for address in (SHARED, OWNER):
                with pytest.raises(NotFound):
                    await mailboxes.get_mailbox(app, address)
            with pytest.raises(NotFound):
                await accounts.get_account(app, OWNER)

    asyncio.run(check())
    last_admin = caducee(settings, "user", "delete", "admin@cabinet.test", "--yes")
    assert last_admin.returncode != 0
    assert "dernier administrateur" in last_admin.stdout + last_admin.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_lifecycle_setting_is_read_and_checked(settings: Settings) -> None:
    settings.disabled_mailbox_mail = "refuse"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.config_path.write_text(render_config(settings), "utf-8")
    assert load_settings(settings.data_dir).disabled_mailbox_mail == "refuse"
    text = settings.config_path.read_text("utf-8").replace('"refuse"', '"bounce"')
    settings.config_path.write_text(text, "utf-8")
    with pytest.raises(ConfigurationError, match="disabled_mailbox_mail"):
        load_settings(settings.data_dir)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_inactivity_settings_are_read_and_checked(settings: Settings) -> None:
    settings.inactive_months, settings.notice_days = 6, 15
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.config_path.write_text(render_config(settings), "utf-8")
    loaded = load_settings(settings.data_dir)
    assert (loaded.inactive_months, loaded.notice_days) == (6, 15)
    text = settings.config_path.read_text("utf-8").replace("notice_days = 15", "notice_days = 0")
    settings.config_path.write_text(text, "utf-8")
    with pytest.raises(ConfigurationError, match="notice_days"):
        load_settings(settings.data_dir)


def test_lifecycle_report_exempt_and_unexempt(settings: Settings) -> None:
    """``caducee lifecycle report`` says what the task will do, with dates; ``exempt`` takes a
    reason and the report shows it; ``unexempt`` puts the mailbox back under the rule."""
    prepare(settings, {})
    when: list[datetime] = []

    async def setup() -> None:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, "admin@cabinet.test", Role.ADMIN)
            await person(app, OWNER)
            await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
            await mailboxes.add_mailbox(app, "archives@cabinet.test", MailboxType.ORG, OWNER)
            when.append(datetime.now(UTC))

    asyncio.run(setup())
    at = (add_months(when[0], 12) - timedelta(days=10)).strftime("%Y-%m-%d")
    exempted = caducee(
        settings, "lifecycle", "exempt", "archives@cabinet.test", "--reason", "Archives légales"
    )
    assert exempted.returncode == 0, exempted.stdout + exempted.stderr
    no_reason = caducee(settings, "lifecycle", "exempt", SHARED)
    assert no_reason.returncode != 0
    report = caducee(settings, "lifecycle", "report", "--at", at)
    assert report.returncode == 0, report.stdout + report.stderr
    text = report.stdout
    assert "12 mois" in text and "30 jours" in text
    notices = text.split("Préavis à envoyer :")[1].split("Suppressions dues :")[0]
    assert SHARED in notices and OWNER in notices and "suppression le" in notices
    assert "archives@cabinet.test" not in notices
    exempt_part = text.split("Boîtes exemptées :")[1]
    assert "archives@cabinet.test" in exempt_part and "« Archives légales »" in exempt_part
    assert caducee(settings, "lifecycle", "unexempt", "archives@cabinet.test").returncode == 0
    again = caducee(settings, "lifecycle", "report", "--at", at).stdout
    assert "archives@cabinet.test" in again.split("Préavis à envoyer :")[1].split("Suppr")[0]
    # The report changed nothing: no notice was sent.
    assert "Préavis en cours : 0" in again
