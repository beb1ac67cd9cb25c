"""The antivirus behind the web doors (issue 19): the REST API's send answers 422 ``virus``
and the webmail's compose page says why, nothing sent nor stored; clamd down → 503. The
patient portal's reply page says what to do in both cases."""

from __future__ import annotations

import base64
from pathlib import Path

from caducee.app import App
from caducee.services import mailboxes, queue
from tests.clamd import MARKER, Clamd
from tests.health.pickups import cabinet, deposit, inbox, token_of
from tests.health.sms_provider_server import ProviderServer
from tests.web.conftest import People, WebClient
from tests.web.test_api import DOCTOR, _auth, _token
from tests.web.test_portal import enter_with_code

INFECTED = b"%PDF-1.4 " + MARKER


async def test_api_send_refuses_an_infected_attachment(
    app: App, web: WebClient, people: People, clamd_server: Clamd, tmp_path: Path
) -> None:
    app.settings.antivirus_clamd = clamd_server.address
    token = await _token(app, ["envoi"])
    box = await mailboxes.get_mailbox(app, DOCTOR)
    body = {
        "a": ["secretariat@cabinet-a.test"],
        "objet": "Scan",
        "pieces_jointes": [
            {
                "nom": "scan.pdf",
                "type": "application/pdf",
                "contenu": base64.b64encode(INFECTED).decode(),
            }
        ],
    }
    refused = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer", json=body, headers=_auth(token)
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "virus" and "Caducee.Test.Marker" in error["message"]
    assert await queue.list_queue(app) == []
    app.settings.antivirus_clamd = f"unix:{tmp_path / 'absent.sock'}"
    body["pieces_jointes"] = []
    unavailable = await web.http.post(
        f"/api/v1/boites/{box.id}/envoyer", json=body, headers=_auth(token)
    )
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "60"


async def test_webmail_send_says_what_was_found(
    app: App, web: WebClient, people: People, clamd_server: Clamd
) -> None:
    app.settings.antivirus_clamd = clamd_server.address
    await web.login(DOCTOR)
    box = await mailboxes.get_mailbox(app, DOCTOR)
    await web.get(f"/courrier/b/{box.id}/ecrire")
    response = await web.http.post(
        f"/courrier/b/{box.id}/envoyer",
        data={"csrf": web.csrf, "a": "secretariat@cabinet-a.test", "objet": "Scan", "corps": "x"},
        files={"pieces": ("scan.pdf", INFECTED, "application/pdf")},
    )
    assert response.status_code == 400
    assert "un virus a été détecté" in response.text and "Caducee.Test.Marker" in response.text


async def test_portal_reply_says_what_to_do(
    app: App, web: WebClient, clamd_server: Clamd, sms_server: ProviderServer, tmp_path: Path
) -> None:
    """A patient answering from the portal with an infected file is told what was found and
    what to do; with clamd down, to try again later (503). Nothing reaches the practice."""
    cab = await cabinet(app)
    app.settings.antivirus_clamd = clamd_server.address
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    await enter_with_code(web, sms_server, base)
    await web.get(f"{base}/message")
    refused = await web.http.post(
        f"{base}/envoyer",
        data={"csrf": web.csrf, "texte": "Voici le scan demandé."},
        files={"fichiers": ("scan.pdf", INFECTED, "application/pdf")},
    )
    assert refused.status_code == 400
    assert "un virus a été détecté (Caducee.Test.Marker" in refused.text
    assert "Faites analyser le fichier par votre antivirus" in refused.text
    app.settings.antivirus_clamd = f"unix:{tmp_path / 'absent.sock'}"
    later = await web.http.post(
        f"{base}/envoyer",
        data={"csrf": web.csrf, "texte": "Voici le scan demandé."},
        files={"fichiers": ("scan.pdf", b"%PDF-1.4 sain", "application/pdf")},
    )
    assert later.status_code == 503
    assert "réessayez dans quelques minutes" in later.text
    assert await inbox(app) == []
