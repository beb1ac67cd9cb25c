"""Every patient-facing e-mail carries the practice's charter: the pickup notice (short form in
French and English, with the link to the full charter on the portal), the address verification
(short form, then the full charter) and the protected-document notice (short form) — each with
the charter that applies to its sender (a practitioner's override, else the practice's)."""

from __future__ import annotations

from dataclasses import replace
from email.parser import BytesParser
from email.policy import default

import pytest

from caducee.app import App
from caducee.domain.charter import Charter
from caducee.health import charter, patients
from caducee.services import accounts, queue
from tests.health.pickups import PATIENT, Cabinet, cabinet, deposit, token_of
from tests.health.test_patients import add, submit_to, verified


@pytest.fixture
async def cab(app: App) -> Cabinet:
    app.settings.deployment = "development"
    app.settings.sms_provider = "fichier"
    return await cabinet(app)


async def _body(app: App, index: int = -1) -> str:
    entry = [e for e in await queue.list_queue(app) if e.address == PATIENT][index]
    message = BytesParser(policy=default).parsebytes(await queue.read_content(app, entry))
    return str(message.get_body().get_content())  # type: ignore[union-attr]


async def test_pickup_notice_carries_the_senders_charter(app: App, cab: Cabinet) -> None:
    doctor = await accounts.get_account(app, cab.mailbox.address)
    await charter.save(
        app, cab.practice.id, replace(Charter(), delay_days=3), actor="a", source="t"
    )
    await charter.save(app, cab.practice.id, replace(Charter(), delay_days=1),
                       account_id=doctor.id, actor="a", source="t")  # fmt: skip
    made = await deposit(app, cab)
    body = await _body(app)
    assert "Ce service ne remplace pas une consultation. En cas d'urgence : 15 ou 112" in body
    assert "Réponse sous 1 jour ouvré." in body  # the doctor's own charter
    assert "In an emergency: 15 or 112" in body and "Answer within 1 working day." in body
    assert f"Charte du cabinet : {made.link}/charte" in body
    assert body.index("En cas d'urgence") < body.index("English") < body.index("In an emergency")
    assert token_of(made.link)


async def test_verification_carries_the_short_and_full_charter(app: App, cab: Cabinet) -> None:
    await charter.save(
        app,
        cab.practice.id,
        replace(Charter(), accepted=("rendez-vous",), free_text="Pas de certificats par courriel."),
        actor="a",
        source="t",
    )
    patient = await add(app, cab)
    await patients.send_verification(app, cab.practice.id, patient.id, actor="a", source="t")
    body = await _body(app)
    assert "En cas d'urgence : 15 ou 112" in body and "In an emergency: 15 or 112" in body
    assert "CHARTE DU CABINET" in body and "- Rendez-vous : " in body
    assert "- 3114 : prévention du suicide" in body and "- 116 117 : " in body
    assert "Pas de certificats par courriel." in body
    assert "Résultats d'examens :" not in body


async def test_protected_document_notice_carries_the_short_charter(app: App, cab: Cabinet) -> None:
    await verified(app, cab, delivery_mode="pdf")
    await submit_to(app, PATIENT)
    body = await _body(app)
    assert "document protégé" in body
    assert "En cas d'urgence : 15 ou 112" in body and "Réponse sous 2 jours ouvrés." in body
    assert "In an emergency: 15 or 112" in body
