"""App passwords of a mailbox that logs in with its own address (issue 15), from the web: its
owner's account page and the practice admin's console."""

from __future__ import annotations

import re

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.errors import AccessDenied
from caducee.services import app_passwords, mailboxes
from caducee.services.auth import authenticate_mail
from tests.web.conftest import People, WebClient
from tests.web.helpers import audit_actions, audit_dump

APP_PASSWORD = re.compile(r'<code id="app-password">([a-z0-9-]+)</code>')
LOGIN_SHOWN = re.compile(r'<dd id="app-password-login">([^<]+)</dd>')
TLT = "tlt@cabinet-a.test"


async def test_the_owner_manages_its_tlt_mailbox_passwords(
    web: WebClient, people: People, app: App
) -> None:
    tlt = await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, people.doctor_a.login)
    await web.login(people.doctor_a.login)
    page = await web.get("/compte/applications")
    assert TLT in page.text and f"/compte/applications/boites/{tlt.id}" in page.text
    created = await web.post(
        f"/compte/applications/boites/{tlt.id}",
        {"libelle": "Logiciel de facturation", "protocoles": ["pop3", "smtp"]},
    )
    assert created.status_code == 200
    found, login = APP_PASSWORD.search(created.text), LOGIN_SHOWN.search(created.text)
    assert found and login and login.group(1) == TLT
    password = found.group(1)
    principal = await authenticate_mail(app, TLT, password, "pop3", "127.0.0.1")
    assert principal.login == TLT and principal.mailbox_id == tlt.id
    with pytest.raises(AccessDenied):  # not the owner's account
        await authenticate_mail(app, people.doctor_a.login, password, "pop3", "127.0.0.1")
    with pytest.raises(AccessDenied):  # out of its scopes
        await authenticate_mail(app, TLT, password, "imap", "127.0.0.1")

    listing = await web.get("/compte/applications")
    assert "Logiciel de facturation" in listing.text and password not in listing.text
    assert f"<td>{people.doctor_a.login}</td>" in listing.text  # created by
    assert password not in await audit_dump(app)
    item = re.search(rf"/compte/applications/boites/{tlt.id}/(\d+)/revoquer", listing.text)
    assert item
    revoked = await web.post(item.group(0))
    assert revoked.status_code == 303
    with pytest.raises(AccessDenied):
        await authenticate_mail(app, TLT, password, "pop3", "127.0.0.1")
    assert [a for a in await audit_actions(app) if a[1].startswith("app_password.")] == [
        (people.doctor_a.login, "app_password.create", TLT, "ok"),
        (people.doctor_a.login, "app_password.revoke", TLT, "ok"),
    ]


async def test_nobody_else_reaches_it_from_the_account_page(
    web: WebClient, people: People, app: App
) -> None:
    tlt = await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, people.doctor_a.login)
    await mailboxes.delegate(app, TLT, people.secretary_a.login, can_send=True)
    await app_passwords.create_app_password(app, TLT, "Facturation")
    [item] = await app_passwords.list_app_passwords(app, TLT)
    own = await mailboxes.get_mailbox(app, people.secretary_a.login)
    await web.login(people.secretary_a.login)  # a delegate, not the owner
    page = await web.get("/compte/applications")
    assert TLT not in page.text
    for path in (
        f"/compte/applications/boites/{tlt.id}",
        f"/compte/applications/boites/{tlt.id}/{item.id}/revoquer",
        f"/compte/applications/boites/{own.id}",  # her personal mailbox: her account's page
        "/compte/applications/boites/abc",
    ):
        await web.get("/compte/applications")
        response = await web.post(path, {"libelle": "Intruse", "protocoles": "pop3"})
        assert response.status_code == 404, path
    assert [(i.label, i.revoked) for i in await app_passwords.list_app_passwords(app, TLT)] == [
        ("Facturation", False)
    ]


async def test_the_practice_admin_manages_them_from_the_console(
    web: WebClient, people: People, app: App
) -> None:
    tlt = await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, people.doctor_a.login)
    own = await mailboxes.get_mailbox(app, people.doctor_a.login)
    await web.login(people.admin_a.login)
    boxes = await web.get("/admin/boites")
    assert f"/admin/boites/{tlt.id}/applications" in boxes.text
    assert f"/admin/boites/{own.id}/applications" not in boxes.text
    page = await web.get(f"/admin/boites/{tlt.id}/applications")
    assert page.status_code == 200 and TLT in page.text
    created = await web.post(
        f"/admin/boites/{tlt.id}/applications",
        {"libelle": "Logiciel de facturation", "protocoles": ["pop3", "imap", "smtp"]},
    )
    assert created.status_code == 200
    found, login = APP_PASSWORD.search(created.text), LOGIN_SHOWN.search(created.text)
    assert found and login and login.group(1) == TLT
    assert (await authenticate_mail(app, TLT, found.group(1), "imap", "127.0.0.1")).login == TLT
    [info] = await app_passwords.list_app_passwords(app, TLT)
    assert info.created_by == people.admin_a.login
    page = await web.get(f"/admin/boites/{tlt.id}/applications")
    assert f"<td>{people.admin_a.login}</td>" in page.text and found.group(1) not in page.text
    bad = await web.post(f"/admin/boites/{tlt.id}/applications", {"libelle": ""})
    assert bad.status_code == 400 and "libellé" in bad.text
    await web.get(f"/admin/boites/{tlt.id}/applications")
    revoked = await web.post(f"/admin/boites/{tlt.id}/applications/{info.id}/revoquer", {})
    assert revoked.status_code == 303
    with pytest.raises(AccessDenied):
        await authenticate_mail(app, TLT, found.group(1), "imap", "127.0.0.1")
    await web.get(f"/admin/boites/{tlt.id}/applications")
    again = await web.post(f"/admin/boites/{tlt.id}/applications/{info.id}/revoquer", {})
    assert again.status_code == 400 and "déjà révoqué" in again.text
    assert [a for a in await audit_actions(app) if a[1].startswith("app_password.")] == [
        (people.admin_a.login, "app_password.create", TLT, "ok"),
        (people.admin_a.login, "app_password.revoke", TLT, "ok"),
    ]
