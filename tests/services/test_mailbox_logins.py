"""Mailbox logins (issue 15): a TLT, ORG or APP mailbox has app passwords of its own and logs
in with its address; who may manage them; what such a login may open; POP3 sizes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from caducee.app import App
from caducee.domain.model import Account, Mailbox, MailboxType, Role
from caducee.domain.pop3_octets import pop3_lines, pop3_size
from caducee.errors import AccessDenied, InvalidInput, LimitReached
from caducee.services import app_passwords, mailboxes, maildrop, mailstore
from caducee.services.app_passwords import (
    create_app_password,
    list_app_passwords,
    revoke_app_password,
)
from caducee.services.auth import authenticate_mail
from caducee.services.lockout import AccountLocked
from caducee.services.messages import store_message
from caducee.store.tables import accounts, messages, metadata
from caducee.store.tables import app_passwords as app_passwords_table
from caducee.store.tables import mailboxes as mailboxes_table
from tests.services.auth_helpers import T0, audit_rows
from tests.services.helpers import person, practice

OWNER = "dr.martin@cabinet.test"
SECRETARY = "accueil@cabinet.test"
ADMIN = "admin@cabinet.test"
TLT = "tlt-martin@cabinet.test"
IP = "198.51.100.7"


async def setup(app: App) -> tuple[Account, Mailbox]:
    await practice(app)
    owner, _ = await person(app, OWNER)
    await person(app, SECRETARY, Role.SECRETAIRE)
    await person(app, ADMIN, Role.ADMIN)
    tlt = await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, OWNER)
    return owner, tlt


async def refused(app: App, login: str, password: str, now: object = None) -> AccessDenied:
    with pytest.raises(AccessDenied) as info:
        await authenticate_mail(app, login, password, "pop3", IP, now=now)  # type: ignore[arg-type]
    return info.value


async def test_a_tlt_mailbox_logs_in_with_its_own_address(app: App) -> None:
    owner, tlt = await setup(app)
    password = await create_app_password(app, TLT.upper(), "Logiciel de facturation")
    principal = await authenticate_mail(app, TLT, password, "pop3", IP, now=T0)
    assert principal.login == TLT and principal.mailbox_id == tlt.id and principal.is_mailbox
    assert principal.account.id == owner.id
    async with app.db.read() as conn:
        row = (await conn.execute(select(app_passwords_table))).one()
    assert (row.account_id, row.mailbox_id, row.created_by) == (owner.id, tlt.id, "cli")
    [info] = await list_app_passwords(app, TLT)
    assert info.last_used_at == T0 and info.created_by == "cli"
    [record] = await audit_rows(app, "auth.mail")
    assert (record.actor, record.target, record.result) == (TLT, TLT, "ok")
    assert json.loads(record.details)["mailbox"] == TLT


async def test_account_and_mailbox_passwords_never_open_each_other(app: App) -> None:
    await setup(app)
    mine = await create_app_password(app, OWNER, "Thunderbird")
    its = await create_app_password(app, TLT, "Facturation")
    await refused(app, TLT, mine)  # the owner's app password is not the mailbox's
    await refused(app, OWNER, its)  # nor the reverse
    assert (await authenticate_mail(app, OWNER, mine, "imap", IP)).mailbox_id is None
    assert [i.label for i in await list_app_passwords(app, OWNER)] == ["Thunderbird"]
    assert [i.label for i in await list_app_passwords(app, TLT)] == ["Facturation"]
    failures = [(r.target, r.result) for r in await audit_rows(app, "auth.mail")]
    assert failures[:2] == [(TLT, "failed"), (OWNER, "failed")]


async def test_lockout_counts_on_the_mailbox_login(app: App) -> None:
    app.settings.lockout_threshold = 3
    await setup(app)
    its = await create_app_password(app, TLT, "Facturation")
    mine = await create_app_password(app, OWNER, "Thunderbird")
    wrong = app_passwords.generate_app_password()
    for _ in range(3):
        assert type(await refused(app, TLT, wrong, now=T0)) is AccessDenied
    assert isinstance(await refused(app, TLT, its, now=T0 + timedelta(seconds=1)), AccountLocked)
    # The lock is the mailbox login's (and the address's): another address may use the owner.
    principal = await authenticate_mail(app, OWNER, mine, "imap", "203.0.113.9", now=T0)
    assert principal.login == OWNER
    later = T0 + timedelta(seconds=31)
    assert (await authenticate_mail(app, TLT, its, "pop3", IP, now=later)).login == TLT


async def test_revoked_disabled_and_out_of_scope_are_refused_without_counting(
    app: App,
) -> None:
    app.settings.lockout_threshold = 2
    owner, tlt = await setup(app)
    pop_only = await create_app_password(app, TLT, "Facturation", scopes=["pop3"])
    old = await create_app_password(app, TLT, "Ancien logiciel")
    [_, old_info] = await list_app_passwords(app, TLT)
    await revoke_app_password(app, TLT, old_info.id, "cli")
    for _ in range(3):
        await refused(app, TLT, old)
    with pytest.raises(AccessDenied):
        await authenticate_mail(app, TLT, pop_only, "smtp", IP)
    async with app.db.write() as conn:
        await conn.execute(
            update(mailboxes_table).where(mailboxes_table.c.id == tlt.id).values(disabled=True)
        )
    await refused(app, TLT, pop_only)
    async with app.db.write() as conn:
        await conn.execute(
            update(mailboxes_table).where(mailboxes_table.c.id == tlt.id).values(disabled=False)
        )
        await conn.execute(update(accounts).where(accounts.c.id == owner.id).values(disabled=True))
    await refused(app, TLT, pop_only)
    reasons = [
        (r.result, json.loads(r.details).get("reason")) for r in await audit_rows(app, "auth.mail")
    ]
    assert reasons == [
        *[("denied", "revoked")] * 3,
        ("denied", "scope"),
        ("denied", "mailbox_disabled"),
        ("denied", "disabled"),
    ]
    async with app.db.write() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == owner.id).values(disabled=False))
    assert (await authenticate_mail(app, TLT, pop_only, "pop3", IP)).login == TLT  # not locked


async def test_who_may_manage_a_mailbox_s_app_passwords(app: App) -> None:
    owner, _ = await setup(app)
    secretary = await _account(app, SECRETARY)
    admin = await _account(app, ADMIN)
    await create_app_password(app, TLT, "Par le titulaire", actor=owner, source=IP)
    await create_app_password(app, TLT, "Par l'admin", actor=admin, source=IP)
    with pytest.raises(AccessDenied):
        await create_app_password(app, TLT, "Par la secrétaire", actor=secretary, source=IP)
    with pytest.raises(AccessDenied):
        await list_app_passwords(app, TLT, secretary)
    with pytest.raises(AccessDenied):  # the secretary's own account is hers, not the owner's
        await create_app_password(app, OWNER, "Intrus", actor=secretary)
    # A delegate of the mailbox is not its owner either.
    await mailboxes.delegate(app, TLT, SECRETARY, can_send=True)
    with pytest.raises(AccessDenied):
        await create_app_password(app, TLT, "Déléguée", actor=secretary)
    items = await list_app_passwords(app, TLT, owner)
    assert [(i.label, i.created_by) for i in items] == [
        ("Par le titulaire", OWNER),
        ("Par l'admin", ADMIN),
    ]
    with pytest.raises(AccessDenied):
        await revoke_app_password(app, TLT, items[0].id, secretary)
    await revoke_app_password(app, TLT, items[0].id, admin, source=IP)
    records = [
        (r.action, r.actor, r.target, r.result)
        for r in await audit_rows(app)
        if r.action.startswith("app_password.")
    ]
    assert records == [
        ("app_password.create", OWNER, TLT, "ok"),
        ("app_password.create", ADMIN, TLT, "ok"),
        ("app_password.create", SECRETARY, TLT, "denied"),
        ("app_password.create", SECRETARY, OWNER, "denied"),
        ("app_password.create", SECRETARY, TLT, "denied"),
        ("app_password.revoke", SECRETARY, TLT, "denied"),
        ("app_password.revoke", ADMIN, TLT, "ok"),
    ]
    # A disabled owner manages nothing any more.
    async with app.db.write() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == owner.id).values(disabled=True))
    with pytest.raises(AccessDenied):
        await create_app_password(app, TLT, "Après départ", actor=owner)


async def test_an_admin_of_another_practice_may_not(app: App) -> None:
    await setup(app)
    await practice(app, "autre.test")
    other_admin, _ = await person(app, "admin@autre.test", Role.ADMIN)
    with pytest.raises(AccessDenied):
        await create_app_password(app, TLT, "Intrus", actor=other_admin)
    with pytest.raises(AccessDenied):
        await create_app_password(app, OWNER, "Intrus", actor=other_admin)
    assert await list_app_passwords(app, TLT) == []


async def test_limit_is_per_mailbox(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_passwords, "MAX_ACTIVE", 2)
    await setup(app)
    await create_app_password(app, TLT, "un")
    await create_app_password(app, TLT, "deux")
    with pytest.raises(LimitReached) as info:
        await create_app_password(app, TLT, "trois")
    assert "Cette boîte" in info.value.fr
    await create_app_password(app, OWNER, "le compte a les siens")
    [first, _] = await list_app_passwords(app, TLT)
    await revoke_app_password(app, TLT, first.id, "cli")
    with pytest.raises(InvalidInput):
        await revoke_app_password(app, TLT, first.id, "cli")
    await create_app_password(app, TLT, "trois")  # room again


async def test_what_a_mailbox_login_may_open(app: App) -> None:
    owner, tlt = await setup(app)
    access = await mailboxes.open_mailbox(app, TLT, TLT, need_send=True, source=IP)
    assert access.mailbox.id == tlt.id and access.can_send and not access.delegated
    assert access.account.id == owner.id
    for other in (OWNER, SECRETARY):
        with pytest.raises(AccessDenied):
            await mailboxes.open_mailbox(app, TLT, other, source=IP)
    # IMAP: the mailbox alone is its personal namespace, no shared one.
    await mailboxes.delegate(app, OWNER, SECRETARY, can_send=False)  # nothing to do with it
    names = [item.name for item in await mailstore.list_folders(app, TLT)]
    assert names == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    opened = await mailstore.open_folder(app, TLT, "Sent", source=IP, write=True)
    assert opened.mailbox.id == tlt.id and opened.rights == mailstore.OWNER
    with pytest.raises(mailstore.NonExistent):
        await mailstore.open_folder(app, TLT, f"{mailstore.SHARED_PREFIX}/{OWNER}/INBOX", source=IP)
    await mailstore.set_subscribed(app, TLT, "Sent", False, source=IP)
    assert not next(
        i for i in await mailstore.list_folders(app, TLT) if i.name == "Sent"
    ).subscribed
    with pytest.raises(mailstore.NonExistent):
        await mailstore.set_subscribed(app, TLT, "Partagés/x@cabinet.test/INBOX", True, source=IP)
    # The owner's account disabled, or the mailbox disabled: nothing.
    async with app.db.write() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == owner.id).values(disabled=True))
    with pytest.raises(AccessDenied):
        await mailboxes.open_mailbox(app, TLT, TLT, source=IP)
    assert await mailstore.list_folders(app, TLT) == []
    async with app.db.write() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == owner.id).values(disabled=False))
        await conn.execute(
            update(mailboxes_table).where(mailboxes_table.c.id == tlt.id).values(disabled=True)
        )
    with pytest.raises(AccessDenied):
        await mailboxes.open_mailbox(app, TLT, TLT, source=IP)
    assert await mailstore.list_folders(app, TLT) == []
    denied = [(r.actor, r.target) for r in await audit_rows(app, "mailbox.access")]
    assert (TLT, OWNER) in denied and (TLT, TLT) in denied


async def test_the_pop3_maildrop_is_the_mailbox_inbox_with_exact_sizes(app: App) -> None:
    _, tlt = await setup(app)
    ragged = b"Subject: ARL\r\n\r\nligne\nsuivante\r\nsans fin"
    plain = b"Subject: NOEMIE\r\n\r\nRetour\r\n"
    await store_message(app, tlt.id, "INBOX", plain)
    await store_message(app, tlt.id, "INBOX", ragged)
    drop = await maildrop.open_maildrop(app, TLT, IP)
    assert drop.mailbox_id == tlt.id and drop.login == TLT
    assert [m.size for m in drop.messages] == [len(plain), len(ragged) + 1 + 2]
    sent = [
        b"".join(line + b"\r\n" for line in pop3_lines(await maildrop.retrieve(app, drop, m)))
        for m in drop.messages
    ]
    assert [len(s) for s in sent] == [m.size for m in drop.messages]
    assert await maildrop.retrieve(app, drop, drop.messages[1]) == ragged  # stored as it came


async def test_sizes_of_messages_from_before_0021_are_computed_once(app: App) -> None:
    _, tlt = await setup(app)
    ragged = b"Subject: ancien\n\nstocke avant la migration"
    stored = await store_message(app, tlt.id, "INBOX", ragged)
    async with app.db.write() as conn:  # as a row written before migration 0021
        await conn.execute(update(messages).values(pop3_size=None))
    drop = await maildrop.open_maildrop(app, TLT, IP)
    assert [m.size for m in drop.messages] == [len(ragged) + 2 + 2]
    async with app.db.read() as conn:
        recorded = await conn.scalar(select(messages.c.pop3_size).where(messages.c.id == stored.id))
    assert recorded == len(ragged) + 4


@given(
    st.binary(max_size=200) | st.lists(st.sampled_from([b"a", b"\r", b"\n", b"."])).map(b"".join)
)
def test_pop3_size_is_what_retr_sends(raw: bytes) -> None:
    assert pop3_size(raw) == sum(len(line) + 2 for line in pop3_lines(raw))


async def test_migration_0021_matches_the_tables(app: App) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with app.db.read() as conn:
        changes = await conn.run_sync(diff)
    touched = [c for c in changes if "app_passwords" in repr(c) or "pop3_size" in repr(c)]
    assert touched == []


async def _account(app: App, login: str) -> Account:
    from caducee.services import accounts as accounts_service

    return await accounts_service.get_account(app, login)
