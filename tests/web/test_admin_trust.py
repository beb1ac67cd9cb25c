"""The admin console shows the MSSanté whitelist in force, its age and the practice's listed
domains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.health import trust_list
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.web.conftest import People, WebClient


async def test_admin_console_shows_the_whitelist_and_its_age(
    app: App, web: WebClient, people: People
) -> None:
    await web.login(people.admin_a.login)
    page = (await web.get("/admin/cabinet")).text
    assert "Aucune liste blanche importée" in page
    old = (datetime.now(UTC) - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%S")
    listing = whitelist_xml([("cabinet-a.test", operator_dn(1))], generated=old)
    await trust_list.import_whitelist(app, listing)
    page = (await web.get("/admin/cabinet")).text
    assert "1 domaines" in page and "plus de 7 jours" in page
    assert "<code>cabinet-a.test</code>" in page
