"""``GET /api/v1/lots`` for practice software: the lots of the token's TLT mailboxes that the
account still reads, those to send again first, filters, pages, refusals as JSON (both
backends)."""

from __future__ import annotations

import pytest

from caducee.app import App
from caducee.domain.model import MailboxType
from caducee.services import api_tokens, mailboxes
from caducee.services.audit import iter_records
from tests.health.lots_seed import Seeded, seed
from tests.web.conftest import People, WebClient

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
TLT = "tlt@cabinet-a.test"


@pytest.fixture
async def seeded(app: App, people: People) -> Seeded:
    await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, DOCTOR)
    await mailboxes.add_mailbox(app, "tlt2@cabinet-a.test", MailboxType.TLT, DOCTOR)
    return await seed(app, TLT)


async def _token(app: App, login: str, boxes: list[str], scopes: list[str]) -> dict[str, str]:
    token, _ = await api_tokens.create_token(
        app, login, "Logiciel de facturation", boxes, scopes, actor="t", source="t"
    )
    return {"authorization": f"Bearer {token}"}


async def test_lots_with_state_deadline_and_returns(
    app: App, web: WebClient, seeded: Seeded
) -> None:
    auth = await _token(app, DOCTOR, [TLT], ["lots"])
    answer = await web.http.get("/api/v1/lots", headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["total"], body["pages"], body["needing_action"]) == (7, 1, 3)
    lots = body["lots"]
    assert [lot["compostage"] for lot in lots[:3]] == [
        seeded.late.compostage,
        seeded.rejected.compostage,
        seeded.undelivered.compostage,
    ]
    late = lots[0]
    assert late["state"] == "sans_arl" and late["needs_action"] is True
    assert late["state_label"].startswith("sans ARL") and late["deadline"].endswith("+00:00")
    assert set(late) >= {
        "id", "mailbox", "sender_number", "compostage", "invoice_count", "fund", "sent_at",
        "delivery", "state", "state_label", "deadline", "returns",
    }  # fmt: skip
    acknowledged = next(x for x in lots if x["id"] == seeded.acknowledged.id)
    assert acknowledged["deadline"] is None and acknowledged["delivery"] == "delivered"
    assert [r["kind"] for r in acknowledged["returns"]] == ["arl_positive", "noemie"]
    assert acknowledged["mailbox"] == TLT and acknowledged["invoice_count"] == 12


async def test_filters_and_pages(app: App, web: WebClient, seeded: Seeded) -> None:
    auth = await _token(app, DOCTOR, [TLT, "tlt2@cabinet-a.test"], ["lots"])
    http = web.http
    negative = (await http.get("/api/v1/lots?state=arl_negatif", headers=auth)).json()
    assert [x["id"] for x in negative["lots"]] == [seeded.rejected.id]
    paged = (await http.get("/api/v1/lots?per_page=2&page=2", headers=auth)).json()
    assert paged["pages"] == 4 and paged["page"] == 2
    assert [x["id"] for x in paged["lots"]] == [seeded.undelivered.id, seeded.fresh.id]
    recent = (await http.get("/api/v1/lots?since=2020-01-01&mailbox=TLT@cabinet-a.test",
                             headers=auth)).json()  # fmt: skip
    assert recent["total"] == 7
    other = (await http.get("/api/v1/lots?mailbox=tlt2@cabinet-a.test", headers=auth)).json()
    assert other["total"] == 0 and other["lots"] == []
    for query, fragment in (
        ("state=perdu", "État de lot inconnu"),
        ("since=04/12/2026", "AAAA-MM-JJ"),
        ("since=0001-01-01", "AAAA-MM-JJ"),
        ("page=0", "page : 1 à 100000"),
        ("per_page=501", "per_page : 1 à 500"),
        ("page=x", "page : entier attendu"),
    ):
        refused = await http.get(f"/api/v1/lots?{query}", headers=auth)
        assert refused.status_code == 422, query
        assert fragment in refused.json()["error"]["message"], query


async def test_token_binding_scope_and_delegation(app: App, web: WebClient, seeded: Seeded) -> None:
    http = web.http
    reader = await _token(app, DOCTOR, [TLT], ["lecture"])
    refused = await http.get("/api/v1/lots", headers=reader)
    assert refused.status_code == 403 and "lots" in refused.json()["error"]["message"]
    # A token bound to the personal mailbox only reaches no lot, and naming the TLT mailbox
    # (or the personal one) is the 404 of an unknown mailbox.
    personal = await _token(app, DOCTOR, [DOCTOR], ["lots"])
    assert (await http.get("/api/v1/lots", headers=personal)).json()["total"] == 0
    for address in (TLT, DOCTOR, "tlt@cabinet-b.test"):
        missing = await http.get(f"/api/v1/lots?mailbox={address}", headers=personal)
        assert missing.status_code == 404, address
    # The secretary's token reaches the lots while the delegation lasts.
    await mailboxes.delegate(app, TLT, SECRETARY, can_send=False)
    secretary = await _token(app, SECRETARY, [TLT], ["lots"])
    assert (await http.get("/api/v1/lots", headers=secretary)).json()["total"] == 7
    named = await http.get(f"/api/v1/lots?mailbox={TLT}", headers=secretary)
    assert named.status_code == 200
    await mailboxes.revoke_delegation(app, TLT, SECRETARY)
    after = await http.get("/api/v1/lots", headers=secretary)
    assert after.status_code == 200 and after.json()["total"] == 0
    gone = await http.get(f"/api/v1/lots?mailbox={TLT}", headers=secretary)
    assert gone.status_code == 404
    calls = [r async for r in iter_records(app.db) if r.action == "api.call"]
    assert any(r.target == "/lots" and r.result == "failed" for r in calls)


def test_openapi_declares_the_lots_route() -> None:
    from caducee.web import api

    operation = api.openapi()["paths"]["/lots"]["get"]
    assert operation["description"] == "Droit du jeton : lots."
    names = [p["name"] for p in operation["parameters"]]
    assert names == ["state", "mailbox", "since", "page", "per_page"]
    assert "lots" in api_tokens.SCOPES
