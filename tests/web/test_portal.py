"""The patient portal's pages and the attacks on them: enumeration, brute force, another
pickup's session, pages without the code, replayed codes, closed links — refused and audited.
The SMS provider is a local HTTPS server speaking the webhook API."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default

import pytest
from sqlalchemy import update

from caducee.app import App
from caducee.health import pickup
from caducee.services import rate_limits
from caducee.store.tables import pickups
from caducee.web.portal.common import UNKNOWN_LINKS_PER_MINUTE
from tests.health.pickups import MARKER, PATIENT, PDF, Cabinet, cabinet, deposit, inbox, token_of
from tests.health.sms_provider_server import ProviderServer
from tests.web.conftest import WebClient
from tests.web.helpers import assert_safe_download, assert_strict_page, audit_actions

CODE = re.compile(r"est (\d{6})\.")


@pytest.fixture
async def cab(app: App) -> Cabinet:
    return await cabinet(app)


def last_code(server: ProviderServer) -> str:
    text = server.received[-1].json()["text"]  # type: ignore[index]
    found = CODE.search(str(text))
    assert found, text
    return found.group(1)


async def enter_with_code(web: WebClient, server: ProviderServer, base: str) -> None:
    landing = await web.get(base)
    assert landing.status_code == 200
    asked = await web.post(f"{base}/code")
    assert asked.status_code == 200 and "+33 6 ** ** ** 78" in asked.text
    done = await web.post(f"{base}/verifier", {"code": last_code(server)})
    assert done.status_code == 303 and done.headers["location"] == f"{base}/message"


async def denied(app: App, action: str) -> int:
    return sum(1 for _a, act, _t, r in await audit_actions(app) if act == action and r == "denied")


async def test_whole_pickup_with_an_sms_code(
    app: App, web: WebClient, cab: Cabinet, sms_server: ProviderServer
) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    landing = await web.get(base)
    assert_strict_page(landing)
    assert "Recevoir un code par SMS" in landing.text and MARKER not in landing.text
    await enter_with_code(web, sms_server, base)
    text = str(sms_server.received[-1].json()["text"])  # type: ignore[index]
    assert text.startswith("Caducée : votre code") or text.startswith("Caducee : votre code")
    assert "résultats" not in text.lower()
    page = await web.get(f"{base}/message")
    assert page.status_code == 200 and MARKER in page.text and "bilan.pdf" in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"]
    cookie = web.http.cookies.jar
    portal = next(c for c in cookie if c.name == "__Host-caducee-portail")
    assert portal.secure and portal.has_nonstandard_attr("HttpOnly")
    body = await web.get(f"{base}/corps")
    assert MARKER in body.text and "sandbox" in body.headers["content-security-policy"]
    part = re.search(rf'href="{base}/pj/(\d+)"', page.text)
    assert part
    download = await web.get(f"{base}/pj/{part.group(1)}")
    assert download.content == PDF
    assert_safe_download(download)
    reply = await web.http.post(
        f"{base}/envoyer",
        data={"csrf": web.csrf, "texte": "Merci, voici ma carte vitale."},
        files={"fichiers": ("carte.png", b"\x89PNG\r\n\x1a\nimage", "image/png")},
    )
    assert reply.status_code == 200 and "Réponse envoyée" in reply.text
    [raw] = await inbox(app)
    message = BytesParser(policy=default).parsebytes(raw)
    assert message["From"] == PATIENT
    assert [p.get_filename() for p in message.iter_attachments()] == ["carte.png"]


async def test_english_is_available(app: App, web: WebClient, cab: Cabinet) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    page = await web.get(f"{base}?lang=en")
    assert "Receive a code by SMS" in page.text


async def test_link_enumeration_same_page_rate_limited_audited(app: App, web: WebClient) -> None:
    # The bucket refills with time: stop its clock, so a slow machine sees the same 20.
    frozen = time.time()
    rate_limits.limiter(app, "portal.unknown_links", UNKNOWN_LINKS_PER_MINUTE).clock = lambda: (
        frozen
    )
    first = await web.get("/portail/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    second = await web.get("/portail/aaaa/message")
    assert first.status_code == second.status_code == 404
    assert "Lien inconnu ou expiré" in first.text and "Lien inconnu ou expiré" in second.text
    for n in range(30):
        last = await web.get(f"/portail/essai-{n}")
    assert last.status_code == 429 and last.headers["retry-after"] == "60"
    assert await denied(app, "pickup.unknown_link") == 20
    assert await denied(app, "pickup.rate_limited") >= 1


async def test_code_brute_force_locks_at_five(
    app: App, web: WebClient, cab: Cabinet, sms_server: ProviderServer
) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    await web.get(base)
    await web.post(f"{base}/code")
    right = last_code(sms_server)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for n in range(4):
        answer = await web.post(f"{base}/verifier", {"code": wrong})
        assert answer.status_code == 400 and f"verrouillage : {4 - n}" in answer.text
    locked = await web.post(f"{base}/verifier", {"code": wrong})
    assert locked.status_code == 403 and "verrouillé" in locked.text
    # the right code no longer opens it, and the link shows the locked page
    again = await web.post(f"{base}/verifier", {"code": right})
    assert again.status_code == 403
    assert "Lien verrouillé" in (await web.get(base)).text
    assert await denied(app, "pickup.code_failed") == 5
    assert await denied(app, "pickup.locked") == 1
    [alert] = await inbox(app)
    assert b"verrouill" in alert


async def test_old_and_used_codes_are_refused(
    app: App, web: WebClient, cab: Cabinet, sms_server: ProviderServer
) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    await web.get(base)
    await web.post(f"{base}/code")
    old = last_code(sms_server)
    await web.post(f"{base}/code")
    new = last_code(sms_server)
    if old != new:
        assert (await web.post(f"{base}/verifier", {"code": old})).status_code == 400
    assert (await web.post(f"{base}/verifier", {"code": new})).status_code == 303
    web.http.cookies.delete("__Host-caducee-portail")
    replay = await web.post(f"{base}/verifier", {"code": new})
    assert replay.status_code == 400
    assert await denied(app, "pickup.code_failed") >= 1


async def test_codes_per_link_are_limited(
    app: App, web: WebClient, cab: Cabinet, sms_server: ProviderServer
) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    await web.get(base)
    for _ in range(3):
        assert (await web.post(f"{base}/code")).status_code == 200
    refused = await web.post(f"{base}/code")
    assert refused.status_code == 429 and len(sms_server.received) == 3


async def test_pages_without_the_code_are_refused(app: App, web: WebClient, cab: Cabinet) -> None:
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    for path in ("/message", "/corps", "/pj/2"):
        answer = await web.get(base + path)
        assert answer.status_code == 403 and MARKER not in answer.text
    posted = await web.http.post(f"{base}/envoyer", data={"texte": "x"})
    assert posted.status_code == 403
    assert await denied(app, "pickup.no_session") == 4
    assert await inbox(app) == []


async def test_one_patients_session_does_not_open_another_pickup(
    app: App, web: WebClient, cab: Cabinet
) -> None:
    mine = await deposit(app, cab, passphrase="cheval-agrafe-42")
    theirs = await deposit(app, cab, message_id="<cr-2@cabinet.test>")
    base, other = "/portail/" + token_of(mine.link), "/portail/" + token_of(theirs.link)
    await web.get(base)
    opened = await web.post(f"{base}/mot-de-passe", {"mot_de_passe": "cheval-agrafe-42"})
    assert opened.status_code == 303
    assert (await web.get(f"{base}/message")).status_code == 200
    for path in ("/message", "/corps", "/pj/2"):
        answer = await web.get(other + path)
        assert answer.status_code == 403 and MARKER not in answer.text
    assert await denied(app, "pickup.other_session") == 3


async def test_expired_and_revoked_links_show_a_clear_page(
    app: App, web: WebClient, cab: Cabinet
) -> None:
    expired = await deposit(app, cab)
    revoked = await deposit(app, cab, message_id="<cr-2@cabinet.test>")
    async with app.db.write() as conn:
        await conn.execute(
            update(pickups)
            .where(pickups.c.id == expired.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await pickup.revoke(app, revoked.id, cab.mailbox.id, actor="dr", source="ip")
    gone = await web.get("/portail/" + token_of(expired.link))
    assert gone.status_code == 410 and "Message expiré" in gone.text
    withdrawn = await web.get("/portail/" + token_of(revoked.link) + "/message")
    assert withdrawn.status_code == 410 and "retiré par votre cabinet" in withdrawn.text
    assert_strict_page(withdrawn)
    assert await denied(app, "pickup.closed") == 2


async def test_framed_body_is_the_webmails_sandbox_without_remote_images(
    app: App, web: WebClient, cab: Cabinet, sms_server: ProviderServer
) -> None:
    """The portal frames the body with the webmail's sandbox and CSP (one implementation), and
    a patient cannot ask it to load remote images."""
    base = "/portail/" + token_of((await deposit(app, cab)).link)
    await enter_with_code(web, sms_server, base)
    for path in ("/corps", "/corps?images=1"):
        body = await web.get(base + path)
        directives = {d.strip() for d in body.headers["content-security-policy"].split(";")}
        assert {
            "default-src 'none'",
            "img-src data:",
            "frame-ancestors 'self'",
            "form-action 'none'",
            "sandbox allow-popups allow-popups-to-escape-sandbox",
        } <= directives, directives
        assert body.headers["cache-control"] == "no-store" and MARKER in body.text
