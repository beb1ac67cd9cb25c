"""The admin console's view of the outbound queue: only the practice's own messages, retry and
delete with CSRF and audit; other practices' messages are out of reach."""

from __future__ import annotations

import re

from caducee.app import App
from caducee.services import queue
from caducee.services.audit import iter_records
from caducee.services.queue import QueueRecipient
from tests.web.conftest import People, WebClient

RAW = b"From: dr.martin@cabinet-a.test\r\nSubject: x\r\n\r\nx\r\n"


async def test_queue_view_retry_and_delete(app: App, web: WebClient, people: People) -> None:
    ours = await queue.enqueue(
        app, RAW, "dr.martin@cabinet-a.test", [QueueRecipient("confrere@ailleurs.test")]
    )
    theirs = await queue.enqueue(
        app, RAW, "dr.durand@cabinet-b.test", [QueueRecipient("x@secret-b.test")]
    )
    await web.login(people.admin_a.login)
    page = await web.get("/admin/file")
    assert page.status_code == 200
    assert "confrere@ailleurs.test" in page.text and "secret-b.test" not in page.text
    assert (await web.post(f"/admin/file/{ours}/relancer")).status_code == 303
    refused = await web.post(f"/admin/file/{theirs}/supprimer", {"avis": "oui"})
    assert refused.status_code == 404
    no_csrf = await web.post(f"/admin/file/{ours}/supprimer", {"avis": "oui"}, csrf="faux")
    assert no_csrf.status_code == 403
    assert (await web.post(f"/admin/file/{ours}/supprimer", {"avis": "oui"})).status_code == 303
    after = (await web.get("/admin/file")).text
    assert "du cabinet est vide." in after
    actions = [
        (r.actor, r.action) async for r in iter_records(app.db) if r.action.startswith("queue.")
    ]
    assert (people.admin_a.login, "queue.retry") in actions
    assert (people.admin_a.login, "queue.delete") in actions
    assert [e.address for e in await queue.list_queue(app)] == ["x@secret-b.test"]


async def test_queue_view_is_for_admins(web: WebClient, people: People) -> None:
    await web.login(people.doctor_a.login)
    page = await web.get("/admin/file")
    assert page.status_code == 403 and re.search("réservée aux administrateurs", page.text)
