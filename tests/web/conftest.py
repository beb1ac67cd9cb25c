"""Fixtures of the web tests: two practices with their people, a fake clock, an HTTPS client
talking to the ASGI app in process (both storage backends, through the ``app`` fixture)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from caducee.app import App
from caducee.domain.model import Account, Practice, Role
from caducee.services import accounts, mfa, practices
from caducee.web import create_web_app
from caducee.web.config import WebConfig

PASSWORD = "Correct-Horse-42-Battery"
BASE_URL = "https://mail.test.example"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


class Clock:
    """A clock the tests move by hand (sessions, TOTP codes)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class People:
    practice_a: Practice
    practice_b: Practice
    admin_a: Account
    doctor_a: Account
    secretary_a: Account
    admin_b: Account
    doctor_b: Account


async def _person(app: App, login: str, role: Role, last: str) -> Account:
    account, _mailbox = await accounts.add_account(
        app,
        accounts.NewAccount(
            login=login, first_name="Jeanne", last_name=last, role=role, password=PASSWORD
        ),
    )
    return account


@pytest.fixture
async def people(app: App) -> People:
    practice_a = await practices.create_practice(
        app, "Cabinet A", ["cabinet-a.test"], mailbox_limit=6
    )
    practice_b = await practices.create_practice(app, "Cabinet B", ["cabinet-b.test"])
    # New practices require a second factor (the default, tested in test_login.py). These two
    # lift it, with the audited setting an administrator uses, so that a password login opens
    # a full session; tests of the second factor switch it back on or enrol one.
    for practice in (practice_a, practice_b):
        await mfa.set_second_factor_required(app, practice.id, False, actor="test", source="test")
    return People(
        practice_a=practice_a,
        practice_b=practice_b,
        admin_a=await _person(app, "admin@cabinet-a.test", Role.ADMIN, "Admin"),
        doctor_a=await _person(app, "dr.martin@cabinet-a.test", Role.PRATICIEN, "Martin"),
        secretary_a=await _person(app, "secretariat@cabinet-a.test", Role.SECRETAIRE, "Petit"),
        admin_b=await _person(app, "admin@cabinet-b.test", Role.ADMIN, "Autre"),
        doctor_b=await _person(app, "dr.durand@cabinet-b.test", Role.PRATICIEN, "Durand"),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def web_config(clock: Clock) -> WebConfig:
    return WebConfig(clock=clock, login_attempts_per_minute=1000)


class WebClient:
    """An httpx client with helpers to log in and to post forms with the page's CSRF token."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client
        self.csrf = ""

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.get(path, **kwargs)
        self._remember(response)
        return response

    def _remember(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("text/html"):
            found = CSRF_META.search(response.text) or CSRF_FIELD.search(response.text)
            if found:
                self.csrf = found.group(1)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None
    ) -> httpx.Response:
        form = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            form.setdefault("csrf", token)
        response = await self.http.post(path, data=form)
        self._remember(response)
        return response

    async def post_json(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"x-csrf-token": self.csrf})

    async def login(self, login: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/connexion")
        response = await self.post("/connexion", {"identifiant": login, "mot_de_passe": password})
        if response.status_code == 303:
            await self.get(response.headers["location"])
        return response

    def session_cookie(self) -> str | None:
        return self.http.cookies.get("__Host-caducee-session")


@pytest.fixture
async def web(app: App, web_config: WebConfig) -> AsyncIterator[WebClient]:
    async with _client(app, web_config) as client:
        yield WebClient(client)


def _client(app: App, config: WebConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_web_app(app, config)), base_url=BASE_URL
    )


@pytest.fixture
def new_client(app: App, web_config: WebConfig) -> Any:
    """Another browser: ``async with new_client() as other: ...``."""

    def make() -> httpx.AsyncClient:
        return _client(app, web_config)

    return make
