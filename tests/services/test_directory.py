"""Practices, accounts, mailboxes, limits and delegations, on both backends."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from caducee.app import App
from caducee.domain.model import DEFAULT_FOLDERS, MailboxType, Role
from caducee.errors import AccessDenied, AlreadyExists, InvalidInput, LimitReached, NotFound
from caducee.services import accounts, mailboxes, practices
from caducee.services.passwords import verify_password
from caducee.store.tables import accounts as accounts_table
from caducee.store.tables import audit_log
from tests.services.helpers import PASSWORD, person, practice


async def test_account_gets_personal_mailbox_with_special_folders(app: App) -> None:
    await practice(app)
    account, mailbox = await person(app, "Dr.Martin@Cabinet.test", rpps="10001234565")
    assert account.login == mailbox.address == "dr.martin@cabinet.test"
    assert mailbox.type is MailboxType.PER and mailbox.owner_account_id == account.id
    folders = await mailboxes.list_folders(app, mailbox.id)
    assert [(f.name, f.special_use) for f in folders] == [(n, u.value) for n, u in DEFAULT_FOLDERS]
    assert all(f.uidvalidity > 0 and f.uidnext == 1 for f in folders)
    async with app.db.read() as conn:
        stored = await conn.scalar(
            select(accounts_table.c.password_hash).where(accounts_table.c.id == account.id)
        )
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD)


async def test_bad_accounts_are_refused_clearly(app: App) -> None:
    await practice(app)
    await person(app, "a@cabinet.test", rpps="10001234565")
    with pytest.raises(AlreadyExists, match="existe déjà"):
        await person(app, "A@cabinet.test")
    with pytest.raises(AlreadyExists, match="RPPS"):
        await person(app, "b@cabinet.test", rpps="10001234565")
    with pytest.raises(InvalidInput, match="clé de contrôle"):
        await person(app, "c@cabinet.test", rpps="10001234566")
    with pytest.raises(NotFound, match="Domaine inconnu"):
        await person(app, "d@ailleurs.test")
    with pytest.raises(InvalidInput, match="trop faible"):
        await accounts.add_account(
            app,
            accounts.NewAccount(
                login="e@cabinet.test", last_name="E", role=Role.SECRETAIRE, password="motdepasse"
            ),
        )
    assert [a.login for a in await accounts.list_accounts(app)] == ["a@cabinet.test"]


async def test_mailbox_limit_refuses_the_twentieth(app: App) -> None:
    await practice(app)
    owner, _ = await person(app, "dr@cabinet.test")
    for n in range(2, 20):
        await mailboxes.add_mailbox(app, f"tlt{n}@cabinet.test", MailboxType.TLT, owner.login)
    assert len(await mailboxes.list_mailboxes(app)) == 19
    with pytest.raises(LimitReached) as caught:
        await mailboxes.add_mailbox(app, "tlt20@cabinet.test", MailboxType.TLT, owner.login)
    assert "limite de 19" in caught.value.fr and "limit of 19" in caught.value.en
    with pytest.raises(LimitReached):  # the account's own mailbox counts too
        await person(app, "new@cabinet.test")
    await practices.update_practice(app, 1, mailbox_limit=20)
    await mailboxes.add_mailbox(app, "tlt20@cabinet.test", MailboxType.TLT, owner.login)
    assert len(await mailboxes.list_mailboxes(app)) == 20


async def test_concurrent_creations_cannot_overshoot_the_limit(app: App) -> None:
    await practice(app, limit=5)
    owner, _ = await person(app, "dr@cabinet.test")
    results = await asyncio.gather(
        *(
            mailboxes.add_mailbox(app, f"m{n}@cabinet.test", MailboxType.ORG, owner.login)
            for n in range(8)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 4
    assert all(isinstance(r, LimitReached) for r in results if isinstance(r, BaseException))
    assert len(await mailboxes.list_mailboxes(app)) == 5


async def test_mailbox_owner_must_belong_to_the_practice(app: App) -> None:
    await practice(app, "un.test")
    await practice(app, "deux.test")
    other, _ = await person(app, "x@deux.test")
    with pytest.raises(InvalidInput, match="n'appartient pas"):
        await mailboxes.add_mailbox(app, "org@un.test", MailboxType.ORG, other.login)
    with pytest.raises(AlreadyExists):
        await practices.create_practice(app, "Doublon", ["un.test"])


async def test_delegation_rights_are_enforced_and_every_use_audited(app: App) -> None:
    await practice(app)
    doctor, box = await person(app, "dr@cabinet.test")
    secretary, _ = await person(app, "sec@cabinet.test", role=Role.SECRETAIRE)
    admin, _ = await person(app, "admin@cabinet.test", role=Role.ADMIN)

    owner_access = await mailboxes.open_mailbox(app, doctor.login, box.address, need_send=True)
    assert owner_access.can_send and not owner_access.delegated
    with pytest.raises(AccessDenied):
        await mailboxes.open_mailbox(app, secretary.login, box.address)
    with pytest.raises(AccessDenied):  # administering is not reading
        await mailboxes.open_mailbox(app, admin.login, box.address)

    await mailboxes.delegate(app, box.address, secretary.login, can_send=False, actor=doctor.login)
    read = await mailboxes.open_mailbox(app, secretary.login, box.address, source="192.0.2.7")
    assert read.delegated and read.can_read and not read.can_send
    with pytest.raises(AccessDenied, match="envoyer"):
        await mailboxes.open_mailbox(app, secretary.login, box.address, need_send=True)
    await mailboxes.delegate(app, box.address, secretary.login, can_send=True)
    assert (
        await mailboxes.open_mailbox(app, secretary.login, box.address, need_send=True)
    ).can_send
    await mailboxes.revoke_delegation(app, box.address, secretary.login)
    with pytest.raises(AccessDenied):
        await mailboxes.open_mailbox(app, secretary.login, box.address)

    async with app.db.read() as conn:
        rows = (
            await conn.execute(
                select(
                    audit_log.c.actor, audit_log.c.action, audit_log.c.result, audit_log.c.source
                )
                .where(audit_log.c.actor == secretary.login)
                .order_by(audit_log.c.seq)
            )
        ).all()
    assert [(r.action, r.result) for r in rows] == [
        ("mailbox.access", "denied"),
        ("delegation.use", "ok"),
        ("delegation.use", "denied"),
        ("delegation.use", "ok"),
        ("mailbox.access", "denied"),
    ]
    assert rows[1].source == "192.0.2.7"


async def test_unknown_mailbox_and_no_right_look_the_same(app: App) -> None:
    await practice(app)
    sec, _ = await person(app, "sec@cabinet.test")
    await person(app, "dr@cabinet.test")
    with pytest.raises(AccessDenied) as missing:
        await mailboxes.open_mailbox(app, sec.login, "nobody@cabinet.test")
    with pytest.raises(AccessDenied) as forbidden:
        await mailboxes.open_mailbox(app, sec.login, "dr@cabinet.test")
    assert missing.value.fr.replace("nobody", "X") == forbidden.value.fr.replace("dr", "X")


async def test_disabled_account_loses_access(app: App) -> None:
    await practice(app)
    doctor, box = await person(app, "dr@cabinet.test")
    await accounts.set_disabled(app, doctor.login, True)
    with pytest.raises(AccessDenied):
        await mailboxes.open_mailbox(app, doctor.login, box.address)
    await accounts.set_disabled(app, doctor.login, False)
    assert (await mailboxes.open_mailbox(app, doctor.login, box.address)).can_read
