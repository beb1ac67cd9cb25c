"""Helpers of the web tests: reading pages, audit rows, enrolling TOTP through the pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pyotp
from sqlalchemy import select

from caducee.app import App
from caducee.store.tables import audit_log
from tests.web.conftest import Clock, WebClient

SECRET = re.compile(r'data-secret="([A-Z2-7]+)"')
CODE = re.compile(r"<li><code>([a-z0-9-]{19})</code></li>")


async def audit_actions(app: App) -> list[tuple[str, str, str, str]]:
    """(actor, action, target, result) of every audit record, oldest first."""
    async with app.db.read() as conn:
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).all()
    return [(r.actor, r.action, r.target, r.result) for r in rows]


async def audit_dump(app: App) -> str:
    async with app.db.read() as conn:
        rows = (await conn.execute(select(audit_log))).all()
    return "\n".join("|".join(str(v) for v in row._mapping.values()) for row in rows)


def totp_code(secret: str, clock: Clock) -> str:
    return str(pyotp.TOTP(secret).at(clock.now))


async def enrol_totp(web: WebClient, clock: Clock) -> tuple[str, list[str]]:
    """Enable TOTP through the pages; return the secret and the recovery codes shown."""
    page = await web.get("/compte/securite")
    if page.status_code == 303:  # an enrolment-only session
        page = await web.get(page.headers["location"])
    assert page.status_code == 200
    started = await web.post("/compte/securite/totp/commencer")
    assert started.status_code == 303, started.text
    qr_page = await web.get("/compte/securite/totp")
    found = SECRET.search(qr_page.text)
    assert found, qr_page.text
    secret = found.group(1)
    confirmed = await web.post(
        "/compte/securite/totp/confirmer", {"code": totp_code(secret, clock)}
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = CODE.findall(confirmed.text)
    return secret, codes


class PageAudit(HTMLParser):
    """Collects what a strict CSP would block or what hides script in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self.forms: list[dict[str, str]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        for name, value in values.items():
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...> inline event handler")
            if name == "style":
                self.problems.append(f"<{tag} style=...> inline style")
            if value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            src = values.get("src", "")
            if not src:
                self.problems.append("inline <script>")
            elif not src.startswith("/static/"):
                self.problems.append(f"third-party script {src}")
            self.scripts.append(src)
            self._in_script = True
        if tag == "form":
            self.forms.append(values)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("script element with content")


def audit_page(response: httpx.Response) -> PageAudit:
    parser = PageAudit()
    parser.feed(response.text)
    return parser


def assert_safe_download(response: httpx.Response) -> None:
    """A downloaded file: saved, not sniffed, sandboxed, and framed by no site (clickjacking)."""
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    directives = {d.strip() for d in response.headers["content-security-policy"].split(";")}
    assert {"default-src 'none'", "sandbox", "frame-ancestors 'none'"} <= directives, directives


def assert_strict_page(response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    parsed = audit_page(response)
    assert parsed.problems == [], (str(response.url), parsed.problems)
    assert '<html lang="' in response.text
    for form in parsed.forms:
        if form.get("method", "get").lower() == "post":
            assert form.get("action", "").startswith("/"), form
    assert response.headers.get("cache-control") == "no-store"


def form_csrf_fields(text: str) -> list[str]:
    return re.findall(r'name="csrf" value="([^"]*)"', text)


def json_of(response: httpx.Response) -> Any:
    return response.json()
