"""The admin console disables, enables and deletes a mailbox and an account (issue 19): each
from its page, a deletion only with the address typed again, another practice's never."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.errors import NotFound
from caducee.services import accounts, inactivity, mailboxes
from caducee.services.delivery import deliver_local
from tests.web.conftest import People, WebClient
from tests.web.helpers import audit_actions

SHARED = "accueil@cabinet-a.test"


async def test_mailbox_disable_enable_delete_from_its_page(
    web: WebClient, people: People, app: App
) -> None:
    box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, people.doctor_a.login)
    await deliver_local(app, b"Subject: Bonjour\r\n\r\nTexte.\r\n", [SHARED])
    await web.login(people.admin_a.login)
    listing = await web.get("/admin/boites")
    assert f'href="/admin/boites/{box.id}"' in listing.text
    page = f"/admin/boites/{box.id}"
    shown = await web.get(page)
    assert shown.status_code == 200 and 'name="confirmer"' in shown.text
    assert (await web.post(f"{page}/desactiver")).status_code == 303
    assert (await mailboxes.get_mailbox(app, SHARED)).disabled
    assert "Désactivée" in (await web.get(page)).text
    assert (await web.post(f"{page}/activer")).status_code == 303
    assert not (await mailboxes.get_mailbox(app, SHARED)).disabled
    await web.get(page)
    wrong = await web.post(f"{page}/supprimer", {"confirmer": "accueil"})
    assert wrong.status_code == 400 and "Pour confirmer la suppression" in wrong.text
    await mailboxes.get_mailbox(app, SHARED)  # still there
    done = await web.post(f"{page}/supprimer", {"confirmer": SHARED})
    assert done.status_code == 303
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox(app, SHARED)
    actions = [(action, target) for _, action, target, _ in await audit_actions(app)]
    assert ("mailbox.disable", SHARED) in actions and ("mailbox.delete", SHARED) in actions
    # Another practice's mailbox: the one 404.
    other = await mailboxes.get_mailbox(app, people.doctor_b.login)
    assert (await web.get(f"/admin/boites/{other.id}")).status_code == 404


async def test_account_delete_from_its_page(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)
    page = f"/admin/comptes/{people.secretary_a.id}"
    await web.get(page)
    wrong = await web.post(f"{page}/supprimer", {"confirmer": people.doctor_a.login})
    assert wrong.status_code == 400
    await web.get(page)
    done = await web.post(f"{page}/supprimer", {"confirmer": people.secretary_a.login})
    assert done.status_code == 303
    with pytest.raises(NotFound):
        await accounts.get_account(app, people.secretary_a.login)
    with pytest.raises(NotFound):
        await mailboxes.get_mailbox(app, people.secretary_a.login)
    # Not their own account.
    await web.get(f"/admin/comptes/{people.admin_a.id}")
    own = await web.post(
        f"/admin/comptes/{people.admin_a.id}/supprimer", {"confirmer": people.admin_a.login}
    )
    assert own.status_code == 400


async def test_lists_show_the_last_use(web: WebClient, people: People, app: App) -> None:
    await web.login(people.admin_a.login)  # a web request records the admin's use
    accounts_page = await web.get("/admin/comptes")
    assert 'class="last-used"' in accounts_page.text and "jamais" in accounts_page.text
    admin = await accounts.get_account(app, people.admin_a.login)
    assert admin.last_used_at is not None
    await mailboxes.open_mailbox(app, people.doctor_a.login, people.doctor_a.login)
    boxes = await web.get("/admin/boites")
    assert boxes.text.count('class="last-used"') == len(
        await mailboxes.list_mailboxes(app, people.practice_a.id)
    )


async def test_mailbox_exempted_from_the_inactivity_rule_from_its_page(
    web: WebClient, people: People, app: App
) -> None:
    box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, people.doctor_a.login)
    await web.login(people.admin_a.login)
    page = f"/admin/boites/{box.id}"
    shown = await web.get(page)
    assert "Règle d'inactivité" in shown.text and 'name="motif"' in shown.text
    empty = await web.post(f"{page}/exemption", {"motif": "  "})
    assert empty.status_code == 400 and "Indiquez le motif" in empty.text
    await web.get(page)
    assert (await web.post(f"{page}/exemption", {"motif": "Archives légales"})).status_code == 303
    shown = await web.get(page)
    assert "« Archives légales »" in shown.text and people.admin_a.login in shown.text
    [entry] = (await inactivity.report(app)).exempted
    assert (entry.address, entry.exempt_reason) == (SHARED, "Archives légales")
    assert (await web.post(f"{page}/exemption/retirer")).status_code == 303
    assert (await inactivity.report(app)).exempted == []
    actions = [(action, target) for _, action, target, _ in await audit_actions(app)]
    assert ("mailbox.inactivity_exempt", SHARED) in actions
    assert ("mailbox.inactivity_unexempt", SHARED) in actions
