"""The national directory through the web door, on both backends: ``GET /api/v1/annuaire``
(a token required, the JSON shape, in the OpenAPI description) and the webmail's compose page
(the « Professionnels » group beside the practice's own books, which stay separate, and the
profession and structure of a recipient the directory lists)."""

from __future__ import annotations

from pathlib import Path

from caducee.app import App
from caducee.health import annuaire
from caducee.services import address_books, api_tokens, mailboxes
from tests.health.test_annuaire import PEOPLE, _file
from tests.web.conftest import People, WebClient

DOCTOR = "dr.martin@cabinet-a.test"
HELENE = "helene.dupont@medecin.mssante.fr"


async def _token(app: App) -> dict[str, str]:
    token, _created = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], ["lecture"], actor="t", source="t"
    )
    return {"authorization": f"Bearer {token}"}


async def test_api_search(app: App, web: WebClient, people: People, tmp_path: Path) -> None:
    auth = await _token(app)
    assert (await web.http.get("/api/v1/annuaire", params={"q": "dupont"})).status_code == 401
    empty = await web.http.get("/api/v1/annuaire", params={"q": "dupont"}, headers=auth)
    assert empty.status_code == 200
    assert empty.json() == {"q": "dupont", "annuaire_du": None, "resultats": []}

    await annuaire.import_file(app, _file(tmp_path / "a.txt", PEOPLE))
    found = await web.http.get("/api/v1/annuaire", params={"q": "Cardio LYON dupont"}, headers=auth)
    assert found.status_code == 200
    body = found.json()
    assert body["q"] == "Cardio LYON dupont" and body["annuaire_du"].startswith("20")
    assert body["resultats"] == [
        {
            "adresse": HELENE, "nom_affiche": "Dr Hélène DUPONT", "civilite": "Dr",
            "nom": "DUPONT", "prenom": "Hélène", "type_bal": "PER", "rpps": "10003456789",
            "identifiant_national": "810003456789", "categorie": "", "profession_code": "10",
            "profession": "Médecin", "savoir_faire_code": "SM04",
            "savoir_faire": "Cardiologie et maladies vasculaires", "structure_id": "",
            "structure": "Hôpital Édouard-Herriot", "service": "Cardiologie",
            "adresse_postale": "5 place d'Arsonval", "code_postal": "69003", "ville": "Lyon",
            "departement": "", "pays": "", "dematerialisation": "",
        }
    ]  # fmt: skip
    limited = await web.http.get(
        "/api/v1/annuaire", params={"q": "lyon", "limite": "1"}, headers=auth
    )
    assert len(limited.json()["resultats"]) == 1
    too_long = await web.http.get("/api/v1/annuaire", params={"q": "x" * 201}, headers=auth)
    assert too_long.status_code == 400 and too_long.json()["error"]["message"].startswith(
        "Recherche trop longue"
    )
    described = (await web.http.get("/api/v1/openapi.json")).json()
    operation = described["paths"]["/annuaire"]["get"]
    assert operation["operationId"] == "search_directory"
    assert [p["name"] for p in operation["parameters"]] == ["q", "limite"]


async def test_webmail_professionals_group(
    app: App, web: WebClient, people: People, tmp_path: Path
) -> None:
    box = await mailboxes.get_mailbox(app, DOCTOR)
    base = f"/courrier/b/{box.id}"
    await address_books.add_contact(
        app, people.practice_a.id, "pro", "Dr Paul Dupont", "paul.dupont@clinique.test",
        actor="t", source="t",
    )  # fmt: skip
    await web.login(DOCTOR)
    before = await web.get(base + "/ecrire")
    assert before.status_code == 200 and 'id="groupe-professionnels"' not in before.text
    assert (await web.get(base + "/carnet/annuaire?q=dupont")).json() == []

    await annuaire.import_file(app, _file(tmp_path / "a.txt", PEOPLE))
    compose = await web.get(base + "/ecrire")
    assert 'id="groupe-professionnels"' in compose.text and "Carnet Professionnels" in compose.text
    assert 'data-book="annuaire"' in compose.text
    group = (await web.get(base + "/carnet/annuaire?q=cardio lyon")).json()
    assert group[0] == {
        "groupe": "Professionnels", "nom": "Dr Hélène DUPONT", "adresse": HELENE,
        "profession": "Médecin", "savoir_faire": "Cardiologie et maladies vasculaires",
        "structure": "Hôpital Édouard-Herriot — Cardiologie", "ville": "69003 Lyon",
    }  # fmt: skip
    assert {g["adresse"] for g in group} == {HELENE, "secretariat.cardio@chu-lyon.mssante.fr"}
    # The practice's own contacts stay in their book, the directory in its group.
    own = (await web.get(base + "/carnet/pros?q=dupont")).json()
    assert [c["adresse"] for c in own] == ["paul.dupont@clinique.test"]
    directory = (await web.get(base + "/carnet/annuaire?q=dupont")).json()
    assert "paul.dupont@clinique.test" not in {g["adresse"] for g in directory}

    # A recipient the directory lists: its profession and structure on the compose page.
    channel = (await web.get(base + f"/canal?a={HELENE.upper()}")).json()
    assert channel["annuaire"] == {
        "nom": "Dr Hélène DUPONT", "profession": "Médecin",
        "savoir_faire": "Cardiologie et maladies vasculaires",
        "structure": "Hôpital Édouard-Herriot — Cardiologie", "ville": "69003 Lyon",
    }  # fmt: skip
    unknown = (await web.get(base + "/canal?a=paul.dupont@clinique.test")).json()
    assert "annuaire" not in unknown
    prefilled = await web.get(base + f"/ecrire?a={HELENE}")
    assert 'id="annuaire-destinataires"' in prefilled.text
    assert "Dr Hélène DUPONT · Médecin" in prefilled.text
    assert "Hôpital Édouard-Herriot — Cardiologie" in prefilled.text


async def test_directory_group_needs_the_mailbox(app: App, web: WebClient, people: People) -> None:
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await web.login("dr.durand@cabinet-b.test")
    assert (await web.get(f"/courrier/b/{box.id}/carnet/annuaire?q=a")).status_code == 403
