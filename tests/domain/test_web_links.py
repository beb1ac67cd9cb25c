"""The pages the server's mail and refusals link to: each URL is answered by the web route
declared from the same path, whatever the base URL."""

from __future__ import annotations

from starlette.routing import Match

from caducee.domain import web_links
from caducee.domain.web_links import Page
from caducee.web import patients as patients_web
from caducee.web import portal

BASE = "https://mail.cabinet-a.test"


def test_every_linked_page_is_a_web_route() -> None:
    urls = {
        Page.PATIENT_RECORD: web_links.url(BASE, Page.PATIENT_RECORD, patient_id=42),
        Page.NEW_PATIENT: web_links.url(BASE, Page.NEW_PATIENT, {"email": "a.b@ailleurs.test"}),
        Page.ADDRESS_VERIFICATION: web_links.url(BASE, Page.ADDRESS_VERIFICATION, token="t0k"),
        Page.PICKUP: web_links.url(BASE, Page.PICKUP, token="t0k"),
        Page.PICKUP_CHARTER: web_links.url(BASE, Page.PICKUP_CHARTER, token="t0k"),
    }
    assert urls == {
        Page.PATIENT_RECORD: f"{BASE}/patients/42",
        Page.NEW_PATIENT: f"{BASE}/patients/nouveau?email=a.b%40ailleurs.test",
        Page.ADDRESS_VERIFICATION: f"{BASE}/patient/verifier/t0k",
        Page.PICKUP: f"{BASE}/portail/t0k",
        Page.PICKUP_CHARTER: f"{BASE}/portail/t0k/charte",
    }
    routes = [*patients_web.routes, *portal.routes]
    for url in urls.values():
        path = url.removeprefix(BASE).partition("?")[0]
        scope = {"type": "http", "method": "GET", "path": path}
        assert any(r.matches(scope)[0] is Match.FULL for r in routes), url


def test_a_token_cannot_leave_its_path_segment() -> None:
    assert web_links.url(BASE, Page.PICKUP, token="../admin?x") == f"{BASE}/portail/..%2Fadmin%3Fx"
