"""The secure pickup service: deposit and notice, passphrase, lock, open, download, reply,
revocation and expiry — on both backends, with the real store, queue and delivery pipeline."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default

import pytest
from sqlalchemy import update

from caducee.app import App
from caducee.errors import InvalidInput, NotFound
from caducee.flows import maintenance
from caducee.health import pickup, pickup_auth
from caducee.health.pickup_store import PickupClosed, by_id, by_token, events
from caducee.services import queue, trace
from caducee.store.tables import pickups
from tests.health.pickups import (
    DOCTOR,
    MARKER,
    PATIENT,
    PDF,
    Cabinet,
    cabinet,
    deposit,
    inbox,
    token_of,
)
from tests.health.sms_provider_server import ProviderServer
from tests.services.helpers import person
from tests.web.helpers import audit_actions, audit_dump


@pytest.fixture
async def cab(app: App) -> Cabinet:
    return await cabinet(app)


def last_code(server: ProviderServer) -> str:
    found = re.search(r"est (\d{6})\.", str(server.received[-1].json()["text"]))  # type: ignore[index]
    assert found
    return found.group(1)


async def test_notice_is_queued_signed_without_health_content(app: App, cab: Cabinet) -> None:
    made = await deposit(app, cab)
    assert made.link.startswith("https://mail.test.example/portail/")
    assert len(token_of(made.link)) >= 43  # 256 bits, base64url
    entries = await queue.list_queue(app)
    assert [e.address for e in entries] == [PATIENT]
    raw = await queue.read_content(app, entries[0])
    notice = BytesParser(policy=default).parsebytes(raw)
    assert notice["Subject"] == "Nouveau message de Cabinet Test"
    assert "d=cabinet.test" in str(notice["DKIM-Signature"]).replace(" ", "")
    body = notice.get_body().get_content()  # type: ignore[union-attr]
    assert made.link in body and "English" in body
    assert MARKER not in raw.decode("utf-8", "replace") and "bilan" not in body
    steps = [e.event for e in await trace.events(app, cab.mailbox.id, "<cr-1@cabinet.test>")]
    assert steps == ["deposited", "queued"]
    # the token itself is nowhere in the database: only its hash
    assert token_of(made.link) not in await audit_dump(app)


async def test_notice_to_one_of_our_mailboxes_is_delivered_locally(app: App, cab: Cabinet) -> None:
    await person(app, "patient.local@cabinet.test")
    await deposit(app, cab, patient="patient.local@cabinet.test")
    [notice] = await inbox(app, "patient.local@cabinet.test")
    assert b"Nouveau message de Cabinet Test" in notice and MARKER.encode() not in notice
    assert await queue.list_queue(app) == []


async def test_passphrase_opens_and_reading_is_traced(app: App, cab: Cabinet) -> None:
    made = await deposit(app, cab, passphrase="cheval-agrafe-42")
    found = await by_token(app, token_of(made.link))
    assert found.id == made.id and found.has_passphrase
    assert not await pickup_auth.check_passphrase(app, found, "mauvais-mot", source="ip")
    assert await pickup_auth.check_passphrase(app, found, "cheval-agrafe-42", source="ip")
    raw = await pickup.open_message(app, found, source="ip")
    assert MARKER.encode() in raw
    meta, data = await pickup.download(app, found, pickup.read_view(raw).attachments[0].index,
                                       source="ip")  # fmt: skip
    assert data == PDF and meta.filename == "bilan.pdf"
    steps = [e.event for e in await trace.events(app, cab.mailbox.id, "<cr-1@cabinet.test>")]
    assert steps[-3:] == ["code_failed", "opened", "downloaded"]
    assert [e.event for e in await events(app, made.id)][-1] == "downloaded"
    actions = [a for _actor, a, _t, _r in await audit_actions(app)]
    assert "pickup.passphrase_failed" in actions and "pickup.download" in actions


async def test_five_wrong_tries_lock_and_alert_the_practice(app: App, cab: Cabinet) -> None:
    made = await deposit(app, cab, passphrase="cheval-agrafe-42")
    found = await by_token(app, token_of(made.link))
    for _ in range(4):
        assert not await pickup_auth.check_passphrase(app, found, "faux-faux-faux", source="ip")
    with pytest.raises(PickupClosed) as closed:
        await pickup_auth.check_passphrase(app, found, "faux-faux-faux", source="ip")
    assert closed.value.reason == "locked"
    # even the right passphrase is refused now
    locked = await by_token(app, token_of(made.link))
    with pytest.raises(PickupClosed):
        await pickup_auth.check_passphrase(app, locked, "cheval-agrafe-42", source="ip")
    [alert] = await inbox(app)
    assert b"verrouill" in alert and PATIENT.encode() in alert
    assert (f"pickup:{made.id}", "pickup.locked", f"mailbox:{cab.mailbox.id}", "denied") in (
        await audit_actions(app)
    )


async def test_reply_lands_in_the_practitioner_inbox(app: App, cab: Cabinet) -> None:
    made = await deposit(app, cab, passphrase="cheval-agrafe-42")
    found = await by_token(app, token_of(made.link))
    scan = pickup.check_reply_file("ordonnance.pdf", b"%PDF-1.7 scan")
    await pickup.reply(app, found, "Merci docteur, voici mon ordonnance.", [scan], source="ip")
    [raw] = await inbox(app)
    reply = BytesParser(policy=default).parsebytes(raw)
    assert reply["From"] == PATIENT and reply["To"] == DOCTOR
    assert reply["In-Reply-To"] == "<cr-1@cabinet.test>"
    assert str(reply["Subject"]).startswith("Re: Vos résultats")
    files = [(p.get_filename(), p.get_content()) for p in reply.iter_attachments()]
    assert files == [("ordonnance.pdf", b"%PDF-1.7 scan")]


def test_reply_files_are_checked_by_type_and_content() -> None:
    with pytest.raises(InvalidInput):
        pickup.check_reply_file("virus.exe", b"MZ\x90")
    with pytest.raises(InvalidInput):
        pickup.check_reply_file("faux.pdf", b"MZ\x90 not a pdf")
    assert pickup.check_reply_file("photo.PNG", b"\x89PNG\r\n\x1a\nxx").content_type == "image/png"


async def test_revoked_link_is_closed_and_content_gone(app: App, cab: Cabinet) -> None:
    made = await deposit(app, cab)
    found = await by_token(app, token_of(made.link))
    other = await cabinet_other_mailbox(app)
    with pytest.raises(Exception, match="introuvable"):
        await pickup.revoke(app, made.id, other, actor="x", source="ip")
    await pickup.revoke(app, made.id, cab.mailbox.id, actor=DOCTOR, source="ip")
    revoked = await by_token(app, token_of(made.link))
    assert revoked.state() == "revoked" and revoked.blob_id is None
    with pytest.raises(PickupClosed):
        await pickup.open_message(app, revoked, source="ip")
    assert found.blob_id is not None
    async with app.db.read() as conn:
        with pytest.raises(NotFound):
            await app.blobs.get(conn, found.blob_id)


async def cabinet_other_mailbox(app: App) -> int:
    _account, mailbox = await person(app, "dr.autre@cabinet.test")
    return mailbox.id


async def test_expired_pickups_are_purged_by_maintenance(app: App, cab: Cabinet) -> None:
    made = await deposit(app, cab)
    assert made.expires_at - made.created_at == timedelta(days=30)
    async with app.db.write() as conn:
        await conn.execute(
            update(pickups)
            .where(pickups.c.id == made.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    done = await maintenance.run_once(app)
    assert done["portal-expiry"] == 1
    expired = await by_token(app, token_of(made.link))
    assert expired.state() == "expired" and expired.blob_id is None
    with pytest.raises(PickupClosed) as closed:
        expired.check_open()
    assert closed.value.reason == "expired"


async def tries_queued_behind_the_link(
    app: App,
    pickup_id: int,
    wrong: Callable[[], Awaitable[bool]],
    right: Callable[[], Awaitable[bool]],
    before: int,
    after: int = 0,
) -> tuple[list[object], object]:
    """``before`` wrong tries, the right one, then ``after`` wrong tries, all sent while the
    link's row is held (as by a try in progress on another node), so that they queue up in
    that order. Returns the outcomes (a bool or the exception raised) of the wrong tries and
    of the right one."""
    async with app.db.write() as conn:
        await by_id(conn, pickup_id, lock=True)
        first = [asyncio.create_task(wrong()) for _ in range(before)]
        await asyncio.sleep(1)  # they reach the held row
        right_try = asyncio.create_task(right())
        await asyncio.sleep(1)
        then = [asyncio.create_task(wrong()) for _ in range(after)]
        await asyncio.sleep(0.1 if after else 0)
    results = await asyncio.gather(*first, *then, right_try, return_exceptions=True)
    return list(results[:-1]), results[-1]


def locked_refusals(results: list[object]) -> int:
    return sum(1 for r in results if isinstance(r, PickupClosed) and r.reason == "locked")


def assert_right_one_never_compared_after_the_lock(
    right_result: object, actions: list[str], failed: str, ok: str
) -> None:
    """The right secret is refused as locked, unless a busy machine let it reach the link
    before the fifth wrong one: then it was compared (and opened) with fewer than five
    failures counted before it — never after the lock, whatever the order."""
    if isinstance(right_result, PickupClosed):
        assert right_result.reason == "locked"
        assert ok not in actions
        return
    assert right_result is True
    assert actions[: actions.index(ok)].count(failed) < 5


@pytest.mark.parametrize(("before", "after"), [(11, 0), (10, 39)])
async def test_concurrent_code_guesses_compare_at_most_five(
    app: App, cab: Cabinet, sms_server: ProviderServer, before: int, after: int
) -> None:
    """Each guess is compared and counted in one transaction: of 12 (or 50) guesses sent at
    once, five wrong ones are compared and lock the link; the others, the right code among
    them, are refused unseen. (Before, every guess was compared before any was counted, and
    the right code sent with 11 wrong ones opened the link.)"""
    wrong_count = before + after
    made = await deposit(app, cab)
    found = await by_token(app, token_of(made.link))
    await pickup_auth.request_code(app, found, source="ip")
    right = last_code(sms_server)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    wrongs, right_result = await tries_queued_behind_the_link(
        app,
        found.id,
        lambda: pickup_auth.check_code(app, found, wrong, source="ip"),
        lambda: pickup_auth.check_code(app, found, right, source="ip"),
        before,
        after,
    )
    assert wrongs.count(False) == 4  # four answered « wrong », the fifth locked the link
    assert locked_refusals(wrongs) == wrong_count - 4
    actions = [(action, result) for _a, action, _t, result in await audit_actions(app)]
    assert actions.count(("pickup.code_failed", "denied")) == 5  # of 11 (or 49) wrong ones
    assert actions.count(("pickup.locked", "denied")) == 1
    assert_right_one_never_compared_after_the_lock(
        right_result, [a for a, _r in actions], "pickup.code_failed", "pickup.code_ok"
    )
    locked = await by_token(app, token_of(made.link))
    assert locked.state() == "locked" and locked.failed_attempts == 5
    [alert] = await inbox(app)
    assert b"verrouill" in alert


async def test_concurrent_passphrase_guesses_compare_at_most_five(app: App, cab: Cabinet) -> None:
    """Eleven wrong passphrases and the right one sent together: the link locks at the fifth
    wrong one and the right one is refused unseen."""
    made = await deposit(app, cab, passphrase="cheval-agrafe-42")
    found = await by_token(app, token_of(made.link))
    wrongs, right_result = await tries_queued_behind_the_link(
        app,
        found.id,
        lambda: pickup_auth.check_passphrase(app, found, "faux-faux-faux", source="ip"),
        lambda: pickup_auth.check_passphrase(app, found, "cheval-agrafe-42", source="ip"),
        11,
    )
    assert wrongs.count(False) == 4
    assert locked_refusals(wrongs) == 7
    actions = [(action, result) for _a, action, _t, result in await audit_actions(app)]
    assert actions.count(("pickup.passphrase_failed", "denied")) == 5
    assert_right_one_never_compared_after_the_lock(
        right_result, [a for a, _r in actions], "pickup.passphrase_failed", "pickup.passphrase_ok"
    )
    locked = await by_token(app, token_of(made.link))
    assert locked.state() == "locked" and locked.failed_attempts == 5
