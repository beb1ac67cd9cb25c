"""The webmail on the S3 blob store (issue 20): a message whose content is an object of an
unreachable store gets a 503 page saying to retry (nothing else breaks), then reads again once
the store is back. A local S3 server (moto's), both metadata backends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.services.delivery import deliver_local
from tests.s3server import LocalS3, local_s3, use_s3
from tests.web.conftest import People, WebClient

BIG = (
    b"From: labo@ailleurs.test\r\nSubject: Compte rendu volumineux\r\n\r\n"
    + b"Resultats joints.\r\n"
    + b"x" * 300_000
    + b"\r\n"
)


@pytest.fixture
def s3() -> Iterator[LocalS3]:
    with local_s3() as server:
        yield server


@pytest.fixture
async def app(settings: Settings, s3: LocalS3) -> AsyncIterator[App]:
    use_s3(settings, s3, inline_max=100 * 1024)
    async with open_app(settings, upgrade=True) as opened:
        yield opened


async def test_a_message_in_an_unreachable_store_gets_503_then_reads(
    app: App, people: People, web: WebClient, s3: LocalS3
) -> None:
    login = people.doctor_a.login
    await deliver_local(app, BIG, [login])
    await web.login(login)
    home = await web.get("/courrier", follow_redirects=True)
    inbox = re.search(r'href="(/courrier/b/\d+/d/\d+)"', home.text)
    assert inbox is not None
    listing = await web.get(inbox.group(1))
    link = re.search(r'href="(/courrier/b/\d+/d/\d+/m/\d+)"', listing.text)
    assert link is not None and "Compte rendu volumineux" in listing.text  # the index answers
    s3.stop()
    try:
        page = await web.get(link.group(1), headers={"accept": "text/html"})
        assert page.status_code == 503
        assert page.headers["retry-after"] == "60"
        assert "momentanément injoignable" in page.text
        listing = await web.get(inbox.group(1))  # the folder still lists (no object needed)
        assert listing.status_code == 200 and "Compte rendu volumineux" in listing.text
    finally:
        s3.start()
    page = await web.get(link.group(1), headers={"accept": "text/html"})
    assert page.status_code == 200 and "Compte rendu volumineux" in page.text
