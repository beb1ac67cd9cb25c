"""Deleting mailboxes and accounts (issue 19), on both backends: the data key destroyed first
(crypto-shredding), every row naming the mailbox and its blobs removed, the practice's count
freed, the télétransmission retention respected, the last administrator kept, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from caducee.app import App
from caducee.domain.model import MailboxType, Role
from caducee.errors import (
    AccessDenied,
    IntegrityError,
    InvalidInput,
    LimitReached,
    NotFound,
    RetentionHold,
)
from caducee.flows import maintenance
from caducee.services import accounts, api_tokens, last_use, lifecycle, mailboxes
from caducee.services.app_passwords import create_app_password
from caducee.services.audit import iter_records
from caducee.services.auth import authenticate_mail
from caducee.services.delivery import deliver_local
from caducee.store import lifecycle_repo
from caducee.store.keyring import mailbox_scope
from caducee.store.tables import messages as messages_table
from tests.services.helpers import person, practice

SHARED = "accueil@cabinet.test"
OWNER = "dr@cabinet.test"
BIG = b"Subject: Compte rendu\r\n\r\n" + b"x" * 300_000 + b"\r\n"  # a blob file, not a row
SMALL = b"Subject: Bonjour\r\n\r\nPetit message.\r\n"


async def _blobs_of(app: App, mailbox_id: int) -> list[str]:
    async with app.db.read() as conn:
        rows = await conn.execute(
            select(messages_table.c.blob_id).where(messages_table.c.mailbox_id == mailbox_id)
        )
        return [str(row.blob_id) for row in rows]


async def test_deleting_a_mailbox_shreds_its_key_then_removes_rows_and_blobs(app: App) -> None:
    await practice(app, limit=3)
    await person(app, OWNER)
    await person(app, "secretariat@cabinet.test", Role.SECRETAIRE)
    box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
    await mailboxes.delegate(app, SHARED, "secretariat@cabinet.test", can_send=True)
    await create_app_password(app, SHARED, "Accueil")
    token, _ = await api_tokens.create_token(
        app, OWNER, "Logiciel", [OWNER, SHARED], ["lecture"], actor="t", source="t"
    )
    for raw in (BIG, SMALL, BIG):
        await deliver_local(app, raw, [SHARED])
    [first, *_] = await _blobs_of(app, box.id)
    async with app.db.read() as conn:
        sealed = await app.blobs.get(conn, first)
        # Readable before: the keyring opens it.
        assert b"Compte rendu" in await app.keyring.open(
            conn, mailbox_scope(box.id), first, "raw", sealed
        )
    with pytest.raises(LimitReached, match="caducee mailbox delete"):
        await mailboxes.add_mailbox(app, "autre@cabinet.test", MailboxType.ORG, OWNER)

    with pytest.raises(InvalidInput, match="saisissez l'adresse"):
        await lifecycle.delete_mailbox(app, SHARED, confirm="accueil@cabinet.tes")
    deleted = await lifecycle.delete_mailbox(app, SHARED, confirm=" Accueil@Cabinet.test ")
    assert deleted.messages == 3

    # The sealed blob, kept aside, can no longer be opened: its key is gone, on this node and
    # on any other (a fresh keyring reads the database).
    app.keyring.forget(mailbox_scope(box.id))
    async with app.db.read() as conn:
        with pytest.raises(IntegrityError):
            await app.keyring.open(conn, mailbox_scope(box.id), first, "raw", sealed)
        with pytest.raises(NotFound):
            await app.blobs.get(conn, first)
        assert await lifecycle_repo.referencing_rows(conn, box.id) == {}
    if app.settings.blob_store == "files":
        assert not any(app.settings.blobs_dir.rglob(first))
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox(app, SHARED)
    # The practice's count is freed: a new mailbox fits again, even at the same address.
    again = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
    assert again.id != box.id or not await _blobs_of(app, again.id)
    # The token lost the mailbox, not its other one.
    _, account = await api_tokens.authenticate(app, token)
    assert account.login == OWNER
    records = [r for r in await _records(app) if r["action"] == "mailbox.delete"]
    assert records and records[0]["target"] == SHARED
    assert "Compte rendu" not in str(records)


async def _records(app: App) -> list[dict[str, object]]:
    return [
        {"action": r.action, "target": r.target, "details": r.details}
        async for r in iter_records(app.db)
    ]


async def test_a_personal_mailbox_goes_with_its_account(app: App) -> None:
    await practice(app)
    await person(app, OWNER)
    with pytest.raises(InvalidInput, match="caducee user delete"):
        await lifecycle.delete_mailbox(app, OWNER, confirm=OWNER)


async def test_a_tlt_mailbox_under_retention_cannot_be_deleted_yet(app: App) -> None:
    await practice(app)
    await person(app, OWNER)
    tlt = await mailboxes.add_mailbox(app, "tlt@cabinet.test", MailboxType.TLT, OWNER)
    await deliver_local(app, b"From: cpam@rss.fr\r\nSubject: ARL\r\n\r\nOK\r\n", [tlt.address])
    with pytest.raises(RetentionHold, match="90 jours") as held:
        await lifecycle.delete_mailbox(app, tlt.address, confirm=tlt.address)
    assert held.value.until is not None
    assert held.value.until > datetime.now(UTC) + timedelta(days=89)
    assert (await mailboxes.get_mailbox(app, tlt.address)).id == tlt.id  # nothing changed
    later = datetime.now(UTC) + timedelta(days=91)
    await lifecycle.delete_mailbox(app, tlt.address, confirm=tlt.address, now=later)
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox(app, tlt.address)


async def test_deleting_an_account(app: App) -> None:
    await practice(app)
    admin, _ = await person(app, "admin@cabinet.test", Role.ADMIN)
    doctor, personal = await person(app, OWNER)
    await mailboxes.delegate(app, "admin@cabinet.test", OWNER, can_send=False)
    await create_app_password(app, OWNER, "Thunderbird")
    token, _ = await api_tokens.create_token(
        app, OWNER, "Logiciel", [OWNER], ["lecture"], actor="t", source="t"
    )
    await deliver_local(app, SMALL, [OWNER])
    box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
    with pytest.raises(InvalidInput, match=SHARED):  # owns another mailbox
        await lifecycle.delete_account(app, OWNER, confirm=OWNER)
    await lifecycle.delete_mailbox(app, SHARED, confirm=SHARED)
    deleted = await lifecycle.delete_account(app, OWNER, confirm=OWNER)
    assert deleted.messages == 1
    with pytest.raises(NotFound):
        await accounts.get_account(app, OWNER)
    with pytest.raises(AccessDenied):
        await api_tokens.authenticate(app, token)
    assert await mailboxes.list_delegations(app) == []
    async with app.db.read() as conn:
        assert await lifecycle_repo.referencing_rows(conn, personal.id) == {}
        assert await lifecycle_repo.referencing_rows(conn, box.id) == {}
    # The last administrator stays.
    with pytest.raises(AccessDenied, match="dernier administrateur"):
        await lifecycle.delete_account(app, admin.login, confirm=admin.login)
    assert doctor.id != admin.id
    # Nobody disables or deletes their own account, whatever the door (console, API).
    await person(app, "admin2@cabinet.test", Role.ADMIN)  # not the last one any more
    with pytest.raises(InvalidInput, match="propre compte"):
        await accounts.set_disabled(app, admin.login, True, actor=admin.login)
    with pytest.raises(InvalidInput, match="propre compte"):
        await lifecycle.delete_account(app, admin.login, confirm=admin.login, actor=admin.login)
    assert not (await accounts.get_account(app, admin.login)).disabled


async def test_last_use_is_written_at_most_once_an_hour(app: App) -> None:
    await practice(app)
    doctor, personal = await person(app, OWNER)
    assert doctor.last_used_at is None and personal.last_used_at is None
    # A door opening the mailbox records both (services.mailboxes.open_mailbox).
    await mailboxes.open_mailbox(app, OWNER, OWNER)
    first = (await mailboxes.get_mailbox(app, OWNER)).last_used_at
    assert first is not None
    assert (await accounts.get_account(app, OWNER)).last_used_at is not None
    # Again within the hour: no write (the node's note), whatever the door.
    await mailboxes.open_mailbox(app, OWNER, OWNER)
    await last_use.note(app, account_id=doctor.id, mailbox_id=personal.id)
    assert (await mailboxes.get_mailbox(app, OWNER)).last_used_at == first
    later = first + timedelta(minutes=61)
    await last_use.note(app, mailbox_id=personal.id, now=later)
    assert (await mailboxes.get_mailbox(app, OWNER)).last_used_at == later
    # An app password on a mail door records the account.
    other, _ = await person(app, "autre@cabinet.test")
    secret = await create_app_password(app, other.login, "Thunderbird")
    await authenticate_mail(app, other.login, secret, "imap", "127.0.0.1")
    assert (await accounts.get_account(app, other.login)).last_used_at is not None


async def test_a_deletion_cut_short_is_finished_by_maintenance(app: App) -> None:
    await practice(app)
    await person(app, OWNER)
    box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
    await deliver_local(app, BIG, [SHARED])
    # A crash right after the first transaction: the key is gone, the rows are still there.
    async with app.db.write() as conn:
        await lifecycle_repo.mark_deleted(conn, box.id, datetime.now(UTC))
    app.keyring.forget(mailbox_scope(box.id))
    assert (await mailboxes.get_mailbox(app, SHARED)).disabled
    with pytest.raises(AccessDenied):
        await mailboxes.open_mailbox(app, OWNER, SHARED)
    done = await maintenance.run_once(app, (maintenance.Task("d", 0, lifecycle.finish_deletions),))
    assert done == {"d": 1}
    async with app.db.read() as conn:
        assert await lifecycle_repo.referencing_rows(conn, box.id) == {}
