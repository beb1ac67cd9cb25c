"""A practitioner's absence, set in the webmail (« Absence » page) and over the REST API
(``/api/v1/absence``): the same checks and audit (health/absences), and the auto-reply it
starts names the replacement."""

from __future__ import annotations

from datetime import timedelta

from caducee.app import App
from caducee.health import absences
from caducee.services import api_tokens
from tests.web.conftest import People, WebClient
from tests.web.helpers import audit_dump

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"


def days(n: int) -> str:
    return (absences.today() + timedelta(days=n)).isoformat()


async def test_absence_page_sets_checks_and_removes(
    app: App, web: WebClient, people: People
) -> None:
    await web.login(DOCTOR)
    page = await web.get("/compte/absence")
    assert page.status_code == 200 and "Aucune absence enregistrée." in page.text
    assert SECRETARY in page.text  # a colleague to choose as replacement
    assert people.doctor_b.login not in page.text  # never another practice's
    # checked by the service: the end before the start, another practice's account
    bad = await web.post("/compte/absence", {"debut": days(3), "fin": days(1)})
    assert bad.status_code == 400 and "précède son début" in bad.text
    stranger = {"debut": days(0), "fin": days(2), "remplacant": people.doctor_b.login}
    bad = await web.post("/compte/absence", stranger)
    assert bad.status_code == 400 and "Remplaçant inconnu" in bad.text
    saved = await web.post(
        "/compte/absence",
        {"debut": days(0), "fin": days(6), "remplacant": SECRETARY, "message": "Bon courage"},
    )
    assert saved.status_code == 303
    page = await web.get("/compte/absence")
    assert "Vous êtes absent(e) du" in page.text and "Bon courage" in page.text
    stored = await absences.absence_of(app, people.doctor_a)
    assert stored is not None and stored.replacement is not None
    assert stored.replacement.login == SECRETARY
    assert await absences.absent_mailboxes(app, [1, 2, 3, 4, 5, 6]) != {}
    removed = await web.post("/compte/absence/supprimer")
    assert removed.status_code == 303
    assert await absences.absence_of(app, people.doctor_a) is None
    dump = await audit_dump(app)
    assert "absence.update" in dump and "absence.delete" in dump


async def _token(app: App, scopes: list[str]) -> dict[str, str]:
    token, _created = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], scopes, actor="t", source="t"
    )
    return {"authorization": f"Bearer {token}"}


async def test_absence_over_the_api(app: App, web: WebClient, people: People) -> None:
    auth = await _token(app, ["lecture", "envoi"])
    empty = (await web.http.get("/api/v1/absence", headers=auth)).json()
    assert empty == {"absent": False, "debut": None, "fin": None, "remplacant": None,
                     "message": ""}  # fmt: skip
    body = {"debut": days(0), "fin": days(3), "remplacant": SECRETARY, "message": "Retour lundi"}
    put = await web.http.put("/api/v1/absence", json=body, headers=auth)
    assert put.status_code == 200, put.text
    got = (await web.http.get("/api/v1/absence", headers=auth)).json()
    assert got["absent"] is True and got["fin"] == days(3)
    assert got["remplacant"]["adresse"] == SECRETARY and got["message"] == "Retour lundi"
    for wrong in (
        {"debut": "hier", "fin": days(1)},
        {"debut": days(0), "fin": days(400)},
        {"debut": days(0), "fin": days(1), "remplacant": DOCTOR},
        {"debut": days(0), "fin": days(1), "inconnu": 1},
        {"debut": days(0), "fin": days(1), "message": 42},
    ):
        refused = await web.http.put("/api/v1/absence", json=wrong, headers=auth)
        assert refused.status_code == 422, wrong
    # a lone surrogate (valid JSON escape, not UTF-8) is no server error
    odd = b'{"debut": "%s", "fin": "%s", "message": "a\\ud800b"}' % (
        days(0).encode(),
        days(1).encode(),
    )
    sent = await web.http.put(
        "/api/v1/absence", content=odd, headers={**auth, "content-type": "application/json"}
    )
    assert sent.status_code == 200 and sent.json()["message"] == "a?b"
    reader = await _token(app, ["lecture"])
    assert (await web.http.put("/api/v1/absence", json=body, headers=reader)).status_code == 403
    assert (await web.http.delete("/api/v1/absence", headers=reader)).status_code == 403
    assert (await web.http.delete("/api/v1/absence", headers=auth)).status_code == 204
    assert (await web.http.get("/api/v1/absence", headers=auth)).json()["debut"] is None
    described = (await web.http.get("/api/v1/openapi.json")).json()
    assert set(described["paths"]["/absence"]) == {"get", "put", "delete"}
