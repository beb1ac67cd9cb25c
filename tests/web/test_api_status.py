"""The OpenAPI description declares the status codes the API really answers (issue 21): for
every operation, a successful call answers the one success code documented (201 with the new
resource's Location, 202 with the trace's Location, 204 without a body), and the refusals every
operation can meet (no token, a token without the scope, an unknown id) are documented too,
with the error schema. Checked against the served description, so the behaviour and the
description cannot drift apart. Both backends."""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta
from typing import Any

import httpx

from caducee.app import App
from caducee.domain.model import SpecialUse
from caducee.services import api_tokens, mailboxes, rate_limits, webmail
from caducee.services.delivery import deliver_local
from caducee.web import api
from tests.health.pickups import Cabinet, deposit
from tests.web.conftest import People, WebClient

DOCTOR = "dr.martin@cabinet-a.test"
SECRETARY = "secretariat@cabinet-a.test"
MAIL = (
    f"From: Labo <labo@cabinet-a.test>\r\nTo: {DOCTOR}\r\nSubject: Resultats\r\n"
    "Message-ID: <status-1@cabinet-a.test>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
    "Texte.\r\n--b\r\nContent-Type: application/pdf\r\n"
    'Content-Disposition: attachment; filename="cr.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
    "\r\nJVBERi0xLjQK\r\n--b--\r\n"
).encode()
PATIENT = {
    "nom": "Garnier",
    "prenom": "Lucie",
    "naissance": "1990-03-02",
    "email": "lucie.garnier@patient-mail.test",
}
#: Operations whose success this test does not reach (a received IHE XDM package: see
#: tests/web/test_xdm_mail.py); their refusals are checked all the same.
SUCCESS_ELSEWHERE = {
    ("GET", "/boites/{mailbox_id}/dossiers/{folder_id}/messages/{uid}/xdm/{part}/{number}"),
    # The administrator's changes (disable, enable, delete): their successes and refusals
    # are checked in tests/web/test_admin_api.py (and by schemathesis).
    ("POST", "/admin/boites/{mailbox_id}/desactivation"),
    ("POST", "/admin/boites/{mailbox_id}/activation"),
    ("DELETE", "/admin/boites/{mailbox_id}"),
    ("POST", "/admin/comptes/{account_id}/desactivation"),
    ("POST", "/admin/comptes/{account_id}/activation"),
    ("DELETE", "/admin/comptes/{account_id}"),
}


class Checker:
    """Calls the API and checks each answer against the served description."""

    def __init__(self, http: httpx.AsyncClient, described: dict[str, Any]) -> None:
        self.http = http
        self.paths: dict[str, Any] = described["paths"]
        self.seen: dict[tuple[str, str], set[int]] = {}

    def documented(self, method: str, template: str) -> dict[str, Any]:
        responses: dict[str, Any] = self.paths[template][method.lower()]["responses"]
        return responses

    async def call(
        self,
        method: str,
        template: str,
        ids: dict[str, int],
        expect: int,
        token: str | None,
        **kwargs: Any,
    ) -> httpx.Response:
        template, _, query = template.partition("?")
        path = "/api/v1" + template.format(**ids) + ("?" + query if query else "")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        answer = await self.http.request(method, path, headers=headers, **kwargs)
        where = f"{method} {template} -> {answer.status_code}: {answer.text[:300]}"
        assert answer.status_code == expect, where
        documented = self.documented(method, template)
        assert str(answer.status_code) in documented, "undocumented: " + where
        successes = [code for code in documented if code.startswith("2")]
        if answer.status_code < 300:
            assert successes == [str(answer.status_code)], where
            if (
                answer.status_code in (201, 202)
                and template != "/patients/{patient_id}/verification"
            ):
                location = answer.headers["location"]
                assert location.startswith("/api/v1/")
                assert (await self.http.get(location, headers=headers)).status_code == 200
            if answer.status_code == 204:
                assert answer.content == b"", where
        else:
            error = answer.json()["error"]
            assert set(error) >= {"code", "message", "message_en"}, where
        self.seen.setdefault((method, template), set()).add(answer.status_code)
        return answer


async def _token(app: App, scopes: list[str]) -> str:
    token, _created = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], scopes, actor="t", source="t"
    )
    return token


async def test_every_operation_answers_what_its_description_says(
    app: App, web: WebClient, people: People
) -> None:
    await deliver_local(app, MAIL, [DOCTOR])
    await deliver_local(app, MAIL, [DOCTOR])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    access = await mailboxes.open_mailbox(app, DOCTOR, DOCTOR)
    inbox = (await webmail.special_folder(app, access, SpecialUse.INBOX)).folder.id
    archive = (await webmail.special_folder(app, access, SpecialUse.ARCHIVE)).folder.id
    made = await deposit(app, Cabinet(people.practice_a, box), patient="paul@patient-mail.test")
    full = await _token(app, ["lecture", "marquage", "envoi", "patients", "lots"])
    described = (await web.http.get("/api/v1/openapi.json")).json()
    check = Checker(web.http, described)
    ids = {"mailbox_id": box.id, "folder_id": inbox, "uid": 1, "part": 2, "number": 1,
           "pickup_id": made.id, "account_id": people.secretary_a.id}  # fmt: skip
    m = "/boites/{mailbox_id}"
    message = m + "/dossiers/{folder_id}/messages/{uid}"

    # Successes, one per operation.
    await check.call("GET", "/boites", ids, 200, full)
    await check.call("GET", m + "/dossiers", ids, 200, full)
    await check.call("GET", m + "/dossiers/{folder_id}/messages", ids, 200, full)
    await check.call("GET", message, ids, 200, full)
    await check.call("GET", message + "/pieces/{part}", ids, 200, full)
    await check.call("POST", message + "/marquer", ids, 200, full, json={"lu": True})
    sent = await check.call(
        "POST", m + "/envoyer", ids, 202, full, json={"a": [SECRETARY], "objet": "x"}
    )
    found = re.fullmatch(r"/api/v1/boites/\d+/dossiers/(\d+)/messages/(\d+)/suivi",
                         sent.headers["location"])  # fmt: skip
    assert found
    sent_ids = {**ids, "folder_id": int(found.group(1)), "uid": int(found.group(2))}
    await check.call("GET", message + "/suivi", sent_ids, 200, full)
    await check.call("POST", m + "/brouillons", ids, 201, full, json={"objet": "x"})
    await check.call("GET", m + "/portail", ids, 200, full)
    await check.call("GET", m + "/portail/{pickup_id}", ids, 200, full)
    await check.call("DELETE", m + "/portail/{pickup_id}", ids, 204, full)
    await check.call("DELETE", message, {**ids, "uid": 2}, 204, full)
    created = await check.call("POST", "/patients", ids, 201, full, json=PATIENT)
    patient = {"patient_id": created.json()["id"]}
    await check.call("GET", "/patients", ids, 200, full)
    await check.call("GET", "/patients/{patient_id}", patient, 200, full)
    await check.call("POST", "/patients/{patient_id}", patient, 200, full,
                     json={**PATIENT, "mode": "pdf"})  # fmt: skip
    await check.call("POST", "/patients/{patient_id}/verification", patient, 202, full)
    await check.call("DELETE", "/patients/{patient_id}", patient, 204, full)
    await check.call("GET", "/charte", ids, 200, full)
    await check.call("GET", "/absence", ids, 200, full)
    await check.call("PUT", "/absence", ids, 200, full, json={
        "debut": str(date.today() + timedelta(days=30)),
        "fin": str(date.today() + timedelta(days=40)), "remplacant": SECRETARY, "message": "Absent",
    })  # fmt: skip
    await check.call("DELETE", "/absence", ids, 204, full)
    await check.call("GET", "/lots", ids, 200, full)
    await check.call("GET", "/annuaire?q=martin", ids, 200, full)
    admin_token, _created = await api_tokens.create_token(
        app,
        people.admin_a.login,
        "Console",
        [people.admin_a.login],
        ["admin"],
        actor="t",
        source="t",
    )
    await check.call("GET", "/admin/boites", ids, 200, admin_token)
    await check.call("GET", "/admin/comptes", ids, 200, admin_token)

    # A refusal with data: the move to a folder of a message under no retention (409 is
    # documented on DELETE), unknown ids, invalid data.
    await check.call("POST", message + "/marquer", {**ids, "uid": 99}, 404, full, json={})
    await check.call("POST", m + "/envoyer", ids, 422, full, json={"a": []})
    await check.call("POST", m + "/envoyer", ids, 400, full, content=b"{pas du json")
    # Over the listener's body limit (web.middleware): 413, in the API's error schema too.
    too_big = await check.call("POST", "/patients", ids, 413, full, content=b"x" * 2_000_000)
    assert too_big.json()["error"]["code"] == "taille"

    # The refusals every operation can meet: no token, a token without the scope, unknown ids.
    ids["patient_id"] = patient["patient_id"]
    # every call without a token a minute after the last: the bad-token budget never runs out
    bad = rate_limits.limiter(app, "api.bad", api.BAD_TOKENS_PER_MINUTE)
    bad.clock = itertools.count(1.8e9, 60.0).__next__
    reader_of_lots = await _token(app, ["lots"])
    lots_only = await _token(app, ["lecture"])
    administrator, _created = await api_tokens.create_token(
        app,
        people.admin_a.login,
        "Console",
        [people.admin_a.login],
        ["admin"],
        actor="t",
        source="t",
    )
    for endpoint in api.ENDPOINTS:
        template = endpoint.path
        kwargs: dict[str, Any] = {}
        if endpoint.request_body is not None:
            kwargs["json"] = {}
        await check.call(endpoint.method, template, ids, 401, None, **kwargs)
        if endpoint.scope is not None:
            lacking = lots_only if endpoint.scope == "lots" else reader_of_lots
            await check.call(endpoint.method, template, ids, 403, lacking, **kwargs)
        if "{" in template:
            unknown = {name: 999_999 for name in ids}
            holder = administrator if endpoint.scope == "admin" else full
            await check.call(endpoint.method, template, unknown, 404, holder, **kwargs)
    await check.call("POST", message + "/marquer", {**ids, "uid": 1}, 200, full,
                     json={"dossier": archive})  # fmt: skip

    operations = {(e.method, e.path) for e in api.ENDPOINTS}
    assert set(check.seen) == operations
    missing = {op for op, codes in check.seen.items() if not any(c < 300 for c in codes)}
    assert missing == SUCCESS_ELSEWHERE
