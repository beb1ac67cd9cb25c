"""The admin console shows the MSSanté whitelist in force, its age and the practice's listed
domains; its whitelist page imports a list with its checksum, every import audited."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from caducee.app import App
from caducee.domain.model import Account, Role
from caducee.health import trust_list
from caducee.services import audit, mfa, practices
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.web.conftest import People, WebClient, _person


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


async def _trust_imports(app: App) -> list[audit.AuditRecord]:
    return [r async for r in audit.iter_records(app.db) if r.action == "trust.import"]


async def _upload(
    web: WebClient, data: bytes, checksum: str, name: str = "liste.xml"
) -> httpx.Response:
    await web.get("/admin/liste-blanche")
    return await web.http.post(
        "/admin/liste-blanche",
        data={"csrf": web.csrf, "empreinte": checksum},
        files={"fichier": (name, data, "application/xml")},
    )


@pytest.fixture
async def lone_admin(app: App) -> Account:
    """The administrator of the one practice this node serves."""
    practice = await practices.create_practice(app, "Cabinet Seul", ["seul.test"])
    await mfa.set_second_factor_required(app, practice.id, False, actor="test", source="test")
    return await _person(app, "admin@seul.test", Role.ADMIN, "Seule")


async def test_admin_imports_the_whitelist_with_its_checksum(
    app: App, web: WebClient, lone_admin: Account
) -> None:
    await web.login(lone_admin.login)
    page = await web.get("/admin/liste-blanche")
    assert page.status_code == 200 and "Aucune liste blanche importée" in page.text
    old = (datetime.now(UTC) - timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%S")
    listing = whitelist_xml([("seul.test", operator_dn(1))], generated=old)
    digest = hashlib.sha256(listing).hexdigest()

    # A checksum that does not match: refused, nothing changes, audited with who and where.
    wrong = await _upload(web, listing, hashlib.sha256(b"autre").hexdigest())
    assert wrong.status_code == 400 and "ne correspond pas" in wrong.text
    assert (await trust_list.status(app)).info is None
    # No checksum at all, or an address the server would fetch in clear: refused too.
    missing = await _upload(web, listing, "")
    assert missing.status_code == 400 and "empreinte SHA-256" in missing.text
    await web.get("/admin/liste-blanche")
    clear = await web.post(
        "/admin/liste-blanche", {"adresse": "http://listes.example/liste.xml", "empreinte": digest}
    )
    assert clear.status_code == 400 and "https://" in clear.text
    refused = await _trust_imports(app)
    assert [r.result for r in refused] == ["failed", "failed", "failed"]
    assert all(r.actor == lone_admin.login and r.source == "127.0.0.1" for r in refused)
    assert '"error": "InvalidInput"' in refused[0].details
    assert digest in refused[0].details  # the file refused, by its SHA-256

    # The right checksum (as sha256sum writes it): imported, its age shown.
    done = await _upload(web, listing, f"{digest}  liste.xml")
    assert done.status_code == 200, done.text
    assert "Liste importée : 1 domaines, 1 certificats" in done.text
    assert "20 jour(s)" in done.text and "plus de 7 jours" in done.text
    assert digest in done.text and "upload:liste.xml" in done.text
    info = (await trust_list.status(app)).info
    assert info is not None and info.sha256 == digest
    accepted = (await _trust_imports(app))[-1]
    assert (accepted.result, accepted.actor) == ("ok", lone_admin.login)


async def test_with_several_practices_the_operator_imports(
    app: App, web: WebClient, people: People
) -> None:
    await web.login(people.admin_a.login)
    page = await web.get("/admin/liste-blanche")
    assert page.status_code == 200 and "importée par l'exploitant" in page.text
    assert 'name="fichier"' not in page.text
    listing = whitelist_xml([("cabinet-a.test", operator_dn(1))])
    response = await _upload(web, listing, hashlib.sha256(listing).hexdigest())
    assert response.status_code == 403
    assert (await trust_list.status(app)).info is None
    (record,) = await _trust_imports(app)
    assert (record.actor, record.result) == (people.admin_a.login, "failed")
    assert '"error": "AccessDenied"' in record.details
