"""Practice scoping and owner-only rules live in services, whatever door calls them (both
backends)."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.errors import AccessDenied, NotFound
from caducee.services import mailboxes, practice_scope, trace
from tests.services.helpers import person, practice


async def test_an_administrator_names_only_objects_of_their_practice(app: App) -> None:
    ours = await practice(app, "cabinet-a.test")
    theirs = await practice(app, "cabinet-b.test")
    account, box = await person(app, "dr.a@cabinet-a.test")
    other_account, other_box = await person(app, "dr.b@cabinet-b.test")
    assert (await practice_scope.account_of_practice(app, ours.id, account.id)).id == account.id
    assert (await practice_scope.mailbox_of_practice(app, ours.id, box.id)).id == box.id
    assert practice_scope.domain_of_practice(ours, " Cabinet-A.test ") == "cabinet-a.test"
    for unknown in (other_account.id, 10_000):  # another practice's is an unknown one
        with pytest.raises(NotFound):
            await practice_scope.account_of_practice(app, ours.id, unknown)
    with pytest.raises(NotFound):
        await practice_scope.mailbox_of_practice(app, ours.id, other_box.id)
    with pytest.raises(NotFound):
        practice_scope.domain_of_practice(ours, theirs.domains[0])


async def test_only_the_owner_sets_the_mailboxs_read_receipts(app: App) -> None:
    await practice(app, "cabinet-a.test")
    _doctor, box = await person(app, "dr.a@cabinet-a.test")
    await person(app, "secretariat@cabinet-a.test")
    await mailboxes.delegate(app, box.address, "secretariat@cabinet-a.test", can_send=True)
    delegate = await mailboxes.open_mailbox(app, "secretariat@cabinet-a.test", box.address)
    with pytest.raises(AccessDenied, match="titulaire"):
        await trace.set_read_receipts(app, delegate, True)
    assert not await trace.read_receipts_enabled(app, box.id)
    owner = await mailboxes.open_mailbox(app, box.address, box.address)
    await trace.set_read_receipts(app, owner, True)
    assert await trace.read_receipts_enabled(app, box.id)
