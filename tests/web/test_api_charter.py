"""``GET /api/v1/charte``: the charter of the token's practice (any scope), a practitioner's
own with ``?praticien=``, never another practice's; in the OpenAPI description."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from caducee.app import App
from caducee.domain.charter import Charter, Closure
from caducee.health import charter
from caducee.services import api_tokens
from tests.web.conftest import People, WebClient

DOCTOR = "dr.martin@cabinet-a.test"


async def _token(app: App) -> dict[str, str]:
    token, _created = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], ["lecture"], actor="t", source="t"
    )
    return {"authorization": f"Bearer {token}"}


async def test_charter_of_the_tokens_practice(app: App, web: WebClient, people: People) -> None:
    auth = await _token(app)
    default = await web.http.get("/api/v1/charte", headers=auth)
    assert default.status_code == 200
    body = default.json()
    assert body["delai_jours_ouvres"] == 2 and body["praticien"] is None
    assert body["types"] == ["resultats", "conseil", "renouvellement", "rendez-vous",
                             "administratif"]  # fmt: skip
    assert body["horaires"]["lundi"] == [{"debut": "09:00", "fin": "12:00"},
                                         {"debut": "14:00", "fin": "18:00"}]  # fmt: skip
    assert [n["numero"] for n in body["numeros_urgence"]] == ["15", "112", "114", "3114",
                                                              "116 117"]  # fmt: skip
    assert body["texte_court"].startswith("Ce service ne remplace pas une consultation.")
    assert "In an emergency: 15 or 112" in body["texte_court_en"]
    assert "CHARTE DU CABINET" in body["texte_complet"]
    assert date.fromisoformat(body["reponse_prevue"]) > date(2020, 1, 1)

    practice_a = people.practice_a.id
    training = Closure(date(2099, 1, 2), date(2099, 1, 9), "Formation")
    closed = replace(Charter(), delay_days=4, region="973", closures=(training,))
    await charter.save(app, practice_a, closed, actor="a", source="t")
    await charter.save(app, practice_a, replace(Charter(), delay_days=1),
                       account_id=people.doctor_a.id, actor="a", source="t")  # fmt: skip
    await charter.save(app, people.practice_b.id, replace(Charter(), delay_days=9),
                       actor="b", source="t")  # fmt: skip
    body = (await web.http.get("/api/v1/charte", headers=auth)).json()
    assert body["delai_jours_ouvres"] == 4 and body["region"] == "973"
    assert body["fermetures"] == [{"debut": "2099-01-02", "fin": "2099-01-09",
                                   "motif": "Formation"}]  # fmt: skip
    own = await web.http.get("/api/v1/charte", params={"praticien": DOCTOR}, headers=auth)
    assert own.json()["delai_jours_ouvres"] == 1 and own.json()["praticien"] == DOCTOR
    for stranger in (people.doctor_b.login, "personne@cabinet-a.test", "pas une adresse"):
        refused = await web.http.get("/api/v1/charte", params={"praticien": stranger},
                                     headers=auth)  # fmt: skip
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "introuvable"
    assert (await web.http.get("/api/v1/charte")).status_code == 401


async def test_in_the_openapi_description(web: WebClient) -> None:
    described = (await web.http.get("/api/v1/openapi.json")).json()
    operation = described["paths"]["/charte"]["get"]
    assert operation["operationId"] == "get_charter"
    assert [p["name"] for p in operation["parameters"]] == ["praticien"]
