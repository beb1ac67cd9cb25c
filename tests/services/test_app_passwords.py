"""App passwords and mail-protocol authentication (IMAP, POP3, SMTP)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from caducee.app import App
from caducee.errors import AccessDenied, InvalidInput, LimitReached, NotFound
from caducee.services import app_passwords
from caducee.services.app_passwords import (
    ALPHABET,
    GROUP_LENGTH,
    GROUPS,
    create_app_password,
    generate_app_password,
    list_app_passwords,
    revoke_app_password,
)
from caducee.services.auth import authenticate_mail
from caducee.services.lockout import AccountLocked
from caducee.store.tables import accounts
from caducee.store.tables import app_passwords as app_passwords_table
from tests.services.auth_helpers import PASSWORD, T0, add_account, audit_rows, audit_text

LOGIN = "dr.martin@cabinet.test"
IP = "198.51.100.7"
FORMAT = re.compile(rf"^[{ALPHABET}]{{7}}(-[{ALPHABET}]{{7}}){{3}}$")


async def refused(
    app: App, password: str, service: str = "imap", login: str = LOGIN, now: object = None
) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        await authenticate_mail(app, login, password, service, IP, now=now)  # type: ignore[arg-type]
    return info.value


def test_generated_passwords_are_strong_and_easy_to_type() -> None:
    assert not set("ilo01") & set(ALPHABET) and len(set(ALPHABET)) == len(ALPHABET)
    assert GROUPS * GROUP_LENGTH * math.log2(len(ALPHABET)) >= 128
    samples = {generate_app_password() for _ in range(200)}
    assert len(samples) == 200
    assert all(FORMAT.match(s) for s in samples)


async def test_create_then_authenticate_on_imap(app: App) -> None:
    account_id = await add_account(app)
    password = await create_app_password(app, "Dr.Martin@cabinet.test", "Thunderbird cabinet")
    assert FORMAT.match(password)
    async with app.db.read() as conn:
        row = (await conn.execute(select(app_passwords_table))).one()
    assert row.account_id == account_id and row.label == "Thunderbird cabinet"
    assert row.secret_sha256 == hashlib.sha256(password.replace("-", "").encode()).hexdigest()
    assert password not in str(tuple(row)) and password.replace("-", "") not in str(tuple(row))
    assert row.scopes == "imap,pop3,smtp" and row.last_used_at is None

    principal = await authenticate_mail(app, LOGIN, password, "imap", IP, now=T0)
    assert principal.account.id == account_id and principal.login == LOGIN
    assert not principal.is_mailbox
    [info] = await list_app_passwords(app, LOGIN)
    assert info.last_used_at == T0
    # Typed without dashes, in capitals, with spaces: still the same password.
    typed = password.replace("-", " ").upper()
    assert (await authenticate_mail(app, LOGIN, typed, "pop3", IP)).account.id == account_id


async def test_account_password_is_refused_on_mail_protocols(app: App) -> None:
    await add_account(app)
    await create_app_password(app, LOGIN, "Téléphone")
    for service in ("imap", "pop3", "smtp"):
        error = await refused(app, PASSWORD, service)
        assert (error.fr, error.en) == (
            "Identifiant ou mot de passe incorrect.",
            "Wrong login or password.",
        )


async def test_scope_is_enforced(app: App) -> None:
    await add_account(app)
    password = await create_app_password(app, LOGIN, "Logiciel métier", scopes={"smtp"})
    await refused(app, password, "imap")
    await refused(app, password, "pop3")
    assert (await authenticate_mail(app, LOGIN, password, "smtp", IP)).login == LOGIN
    [imap, _pop3, smtp] = await audit_rows(app, "auth.mail")
    assert (imap.result, json.loads(imap.details)["reason"]) == ("denied", "scope")
    assert json.loads(smtp.details)["service"] == "smtp" and smtp.result == "ok"


async def test_revoked_password_is_refused(app: App) -> None:
    await add_account(app)
    keep = await create_app_password(app, LOGIN, "Ordinateur")
    drop = await create_app_password(app, LOGIN, "Ancien téléphone")
    [first, second] = await list_app_passwords(app, LOGIN)
    await revoke_app_password(app, LOGIN, second.id, "admin@cabinet.test")
    await refused(app, drop)
    assert (await authenticate_mail(app, LOGIN, keep, "imap", IP)).login == LOGIN
    with pytest.raises(InvalidInput):
        await revoke_app_password(app, LOGIN, second.id, "cli")
    with pytest.raises(NotFound):
        await revoke_app_password(app, LOGIN, second.id + 100, "cli")
    await add_account(app, "other@cabinet.test")
    with pytest.raises(NotFound):  # another account's app password
        await revoke_app_password(app, "other@cabinet.test", first.id, "cli")
    listed = await list_app_passwords(app, LOGIN)
    assert [(i.label, i.revoked) for i in listed] == [
        ("Ordinateur", False),
        ("Ancien téléphone", True),
    ]
    [record] = await audit_rows(app, "app_password.revoke")
    assert record.actor == "admin@cabinet.test" and record.target == LOGIN
    assert json.loads(record.details) == {"id": second.id, "label": "Ancien téléphone"}


async def test_list_never_shows_the_secret(app: App) -> None:
    await add_account(app)
    password = await create_app_password(app, LOGIN, "Thunderbird", scopes=["imap", "smtp"])
    [info] = await list_app_passwords(app, LOGIN)
    fields = asdict(info)
    assert set(fields) == {
        "id",
        "label",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
        "created_by",
    }
    assert info.scopes == ("imap", "smtp") and not info.revoked
    digest = hashlib.sha256(password.replace("-", "").encode()).hexdigest()
    assert password not in repr(info) and digest not in repr(info)


async def test_label_and_scopes_are_checked(app: App) -> None:
    await add_account(app)
    for label in ("", "   ", "x" * 101, "a\nb"):
        with pytest.raises(InvalidInput) as info:
            await create_app_password(app, LOGIN, label)
        assert info.value.fr and info.value.en and info.value.fr != info.value.en
    await create_app_password(app, LOGIN, "x" * 100)
    with pytest.raises(InvalidInput) as scope_error:
        await create_app_password(app, LOGIN, "ok", scopes={"imap", "ftp"})
    assert "ftp" in scope_error.value.fr
    with pytest.raises(InvalidInput):
        await create_app_password(app, LOGIN, "ok", scopes=[])
    with pytest.raises(NotFound):
        await create_app_password(app, "nobody@cabinet.test", "ok")
    with pytest.raises(NotFound):
        await list_app_passwords(app, "nobody@cabinet.test")


async def test_active_app_passwords_are_limited(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_passwords, "MAX_ACTIVE", 2)
    await add_account(app)
    await create_app_password(app, LOGIN, "un")
    await create_app_password(app, LOGIN, "deux")
    with pytest.raises(LimitReached):
        await create_app_password(app, LOGIN, "trois")
    [first, _] = await list_app_passwords(app, LOGIN)
    await revoke_app_password(app, LOGIN, first.id, "cli")
    await create_app_password(app, LOGIN, "trois")


async def test_disabled_account_and_unknown_login_are_refused(app: App) -> None:
    await add_account(app)
    password = await create_app_password(app, LOGIN, "Thunderbird")
    await refused(app, password, login="nobody@cabinet.test")
    async with app.db.write() as conn:
        await conn.execute(update(accounts).values(disabled=True))
    await refused(app, password)
    results = [(r.target, r.result) for r in await audit_rows(app, "auth.mail")]
    assert results == [("nobody@cabinet.test", "failed"), (LOGIN, "denied")]


async def test_wrong_passwords_lock_but_revoked_ones_do_not(app: App) -> None:
    app.settings.lockout_threshold = 3
    await add_account(app)
    password = await create_app_password(app, LOGIN, "Thunderbird")
    old = await create_app_password(app, LOGIN, "Vieux téléphone")
    [_, old_info] = await list_app_passwords(app, LOGIN)
    await revoke_app_password(app, LOGIN, old_info.id, "cli")
    for _ in range(5):  # a forgotten phone retrying with its revoked password
        assert type(await refused(app, old, now=T0)) is AccessDenied
    assert (await authenticate_mail(app, LOGIN, password, "imap", IP, now=T0)).login == LOGIN
    wrong = generate_app_password()
    for _ in range(3):
        assert type(await refused(app, wrong, now=T0)) is AccessDenied
    error = await refused(app, password, now=T0 + timedelta(seconds=1))
    assert isinstance(error, AccountLocked)
    later = T0 + timedelta(seconds=31)
    assert (await authenticate_mail(app, LOGIN, password, "imap", IP, now=later)).login == LOGIN


async def test_audit_records_and_no_secret_in_them(app: App) -> None:
    await add_account(app)
    password = await create_app_password(app, LOGIN, "Thunderbird", actor="admin@cabinet.test")
    await authenticate_mail(app, LOGIN, password, "imap", IP)
    await refused(app, PASSWORD, "smtp")
    [info] = await list_app_passwords(app, LOGIN)
    await revoke_app_password(app, LOGIN, info.id, "cli")
    records = await audit_rows(app)
    assert [(r.action, r.result) for r in records] == [
        ("app_password.create", "ok"),
        ("auth.mail", "ok"),
        ("auth.mail", "failed"),
        ("app_password.revoke", "ok"),
    ]
    create = records[0]
    assert create.actor == "admin@cabinet.test" and create.target == LOGIN
    assert json.loads(create.details) == {
        "id": info.id,
        "label": "Thunderbird",
        "scopes": "imap,pop3,smtp",
        "kind": "account",
    }
    assert json.loads(records[1].details) == {"service": "imap", "app_password": info.id}
    assert records[1].source == IP
    text = await audit_text(app)
    digest = hashlib.sha256(password.replace("-", "").encode()).hexdigest()
    for secret in (password, password.replace("-", ""), digest, PASSWORD):
        assert secret not in text
