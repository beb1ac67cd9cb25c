"""Fixtures shared by the whole suite: both storage backends, an initialised data dir, an App.

The PostgreSQL backend runs on a throwaway cluster (see ``tests/pgcluster.py``). Where the
binaries are missing the PostgreSQL tests are skipped loudly; under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.services import dns as caducee_dns
from caducee.store.keyring import create_master_key_file
from tests.clamd import clamd_server  # noqa: F401 - a real ClamAV daemon, per test module
from tests.dnsserver import LocalDNS
from tests.health.sms_provider_server import ProviderServer
from tests.oidc_provider import TestProvider
from tests.pgcluster import PgCluster, find_pg_bin

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        message = (
            "PostgreSQL introuvable (initdb/pg_ctl) : installez le paquet Debian « postgresql » "
            "ou définissez PG_BIN. / PostgreSQL binaries not found."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PgCluster(bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def dns_server() -> Iterator[LocalDNS]:
    server = LocalDNS()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def test_dns(dns_server: LocalDNS) -> Iterator[LocalDNS]:
    """The local DNS server every test's settings point at: tests never query real DNS
    (unknown names get NXDOMAIN at once instead of timing out). Records a test publishes, and
    what resolvers cached, are forgotten after it."""
    yield dns_server
    dns_server.clear()
    for cache in caducee_dns._caches.values():
        cache.flush()


def make_settings(
    data_dir: Path,
    backend: str,
    pg: PgCluster | None,
    *,
    blob_store: str | None = None,
    dns_resolver: str = "",
) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=data_dir, hostname="mail.test.example", dns_resolver=dns_resolver)
    if backend == "postgres":
        assert pg is not None
        settings.database_url = pg.url(pg.create_database())
        settings.blob_store = blob_store or "database"
    else:
        settings.blob_store = blob_store or "files"
    create_master_key_file(settings)
    return settings


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, test_dns: LocalDNS
) -> Settings:
    pg = request.getfixturevalue("pg_cluster") if backend == "postgres" else None
    return make_settings(tmp_path / "data", backend, pg, dns_resolver=test_dns.resolver_spec)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    async with open_app(settings, upgrade=True) as opened:
        yield opened


@pytest.fixture
def provider() -> Iterator[TestProvider]:
    """A local OpenID provider (Pro Santé Connect's stand-in) on loopback."""
    started = TestProvider().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def sms_server(tmp_path: Path, app: App) -> Iterator[ProviderServer]:
    """The SMS provider: a local HTTPS server speaking the webhook API, set as the app's."""
    server = ProviderServer(tmp_path / "provider").start()
    app.settings.sms_provider = "webhook"
    app.settings.sms_url = server.url + "/hooks/sms"
    app.settings.sms_ca_file = server.ca_file
    try:
        yield server
    finally:
        server.stop()
