"""The two address books and the channel of a recipient: kept apart, sealed at rest,
practice-scoped, and served to the compose page as JSON."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from caducee.app import App
from caducee.errors import AlreadyExists, InvalidInput
from caducee.flows import channels
from caducee.health import patients, trust_list
from caducee.services import address_books, mailboxes
from caducee.store.tables import contacts
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.web.conftest import People, WebClient

DOCTOR = "dr.martin@cabinet-a.test"


async def _register(app: App, practice: int, email: str) -> None:
    await patients.add_patient(
        app, practice, patients.PatientData("Garnier", "Lucie", "1990-03-02", email),
        actor="t", source="t",
    )  # fmt: skip


async def test_books_never_mix_and_are_sealed(app: App, people: People) -> None:
    practice = people.practice_a.id
    with pytest.raises(InvalidInput, match="registre des patients"):
        await address_books.add_contact(
            app, practice, "patient", "Mme Lucie Garnier", "lucie.garnier@gmail.test",
            actor="t", source="t",
        )  # fmt: skip
    await _register(app, practice, "lucie.garnier@gmail.test")
    await address_books.add_contact(
        app, practice, "pro", "Dr Anne Moreau", "a.moreau@chu.test", actor="t", source="t"
    )
    with pytest.raises(AlreadyExists, match="patient du registre"):
        await address_books.add_contact(
            app, practice, "pro", "Lucie", "Lucie.Garnier@gmail.test", actor="t", source="t"
        )
    pros = [c.email for c in await address_books.suggest(app, practice, "pro", "")]
    assert "a.moreau@chu.test" in pros and "lucie.garnier@gmail.test" not in pros
    assert DOCTOR in pros  # colleagues complete the professional book
    # Another practice sees none of it.
    others = await address_books.suggest(app, people.practice_b.id, "pro", "")
    assert all(c.email.endswith("@cabinet-b.test") for c in others)
    async with app.db.read() as conn:
        stored = b"".join(r.sealed for r in await conn.execute(select(contacts)))
    assert b"Garnier" not in stored and b"gmail" not in stored


async def test_channels(app: App, people: People) -> None:
    practice = people.practice_a.id
    await _register(app, practice, "patient@gmail.test")
    await address_books.add_contact(
        app, practice, "pro", "K", "kine@libre.test", actor="t", source="t"
    )
    await trust_list.import_whitelist(app, whitelist_xml([("chu.mssante.test", operator_dn(1))]))
    assert await channels.classify(app, practice, "secretariat@cabinet-a.test") == "interne"
    assert await channels.classify(app, practice, "x@chu.mssante.test") == "confiance"
    assert await channels.classify(app, practice, "patient@gmail.test") == "patient"
    assert await channels.classify(app, practice, "kine@libre.test") == "professionnel"
    assert await channels.classify(app, practice, "inconnu@ailleurs.test") == "externe"
    assert await channels.classify(app, practice, "pas une adresse") == "invalide"


async def test_web_books_and_channel_json(app: App, web: WebClient, people: People) -> None:
    box = await mailboxes.get_mailbox(app, DOCTOR)
    base = f"/courrier/b/{box.id}"
    await web.login(DOCTOR)
    page = await web.get(base + "/carnet")
    assert page.status_code == 200 and "Professionnels" in page.text
    refused = await web.post(
        base + "/carnet",
        {"carnet": "patient", "nom": "M. Paul Roux", "adresse": "paul.roux@gmail.test"},
    )
    assert refused.status_code == 400 and "registre des patients" in refused.text
    await patients.add_patient(
        app, people.practice_a.id,
        patients.PatientData("Roux", "Paul", "1980-01-01", "paul.roux@gmail.test"),
        actor="t", source="t",
    )  # fmt: skip
    again = await web.post(
        base + "/carnet", {"carnet": "pro", "nom": "Paul", "adresse": "paul.roux@gmail.test"}
    )
    assert again.status_code == 400 and "patient du registre" in again.text
    assert (await web.get(base + "/carnet/patients?q=roux")).json() == [
        {"nom": "ROUX Paul", "adresse": "paul.roux@gmail.test", "verification": "unverified"}
    ]
    assert (await web.get(base + "/carnet/pros?q=roux")).json() == []
    info = (await web.get(base + "/canal?a=paul.roux@gmail.test")).json()
    assert info == {"canal": "patient", "libelle": "Patient"}
    compose = await web.get(base + "/ecrire")
    assert 'src="/static/compose.js"' in compose.text and "Carnet Patients" in compose.text


async def test_books_refused_without_the_mailbox(app: App, web: WebClient, people: People) -> None:
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await web.login("dr.durand@cabinet-b.test")
    assert (await web.get(f"/courrier/b/{box.id}/carnet")).status_code == 403
    assert (await web.get(f"/courrier/b/{box.id}/carnet/patients?q=a")).status_code == 403
