"""The sender's side: the trace of a message left on the portal shows each step with its time,
and « Révoquer » withdraws it (the patient's link then shows a clear page)."""

from __future__ import annotations

import re
from typing import Any

from caducee.app import App
from caducee.services.delivery import deliver_local
from caducee.store import directory_repo
from tests.health.pickups import DOCTOR, cabinet, deposit, health_message, token_of
from tests.web.conftest import Clock, WebClient
from tests.web.helpers import enrol_totp


async def test_trace_shows_portal_steps_and_revoke_works(
    app: App, web: WebClient, new_client: Any, clock: Clock
) -> None:
    cab = await cabinet(app)
    await deliver_local(app, health_message(), [DOCTOR], folder="Sent")
    made = await deposit(app, cab, passphrase="cheval-agrafe-42")
    async with app.db.read() as conn:
        sent = await directory_repo.folder_by_name(conn, cab.mailbox.id, "Sent")
    assert sent is not None
    patient_base = "/portail/" + token_of(made.link)
    async with new_client() as p:
        patient = WebClient(p)
        await patient.get(patient_base)
        await patient.post(f"{patient_base}/mot-de-passe", {"mot_de_passe": "cheval-agrafe-42"})
        assert (await patient.get(f"{patient_base}/message")).status_code == 200
    await web.login(DOCTOR)
    await enrol_totp(web, clock)  # the practice requires a second factor (the default)
    trace_path = f"/courrier/b/{cab.mailbox.id}/d/{sent.id}/m/1/trace"
    page = await web.get(trace_path)
    assert page.status_code == 200
    for step in ("déposé sur le portail", "ouvert sur le portail", "en attente d"):
        assert step in page.text
    action = re.search(r'action="([^"]+/revoquer)"', page.text)
    assert action and "Révoquer" in page.text
    done = await web.post(action.group(1), {"retour": trace_path})
    assert done.status_code == 303
    after = await web.get(trace_path)
    assert "retiré du portail" in after.text and "Révoquer" not in after.text
    gone = await web.get(patient_base)
    assert gone.status_code == 410
