"""``caducee serve``: the real process, its listeners, graceful stop, start-up refusals; the
status web app and its security headers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.errors import ConfigurationError
from caducee.listeners import ListenAddress, parse_address
from caducee.server import listeners_file, serve, single_instance
from caducee.store.database import Database
from caducee.web import CONTENT_SECURITY_POLICY, HttpsListener, create_web_app
from tests.conftest import make_settings
from tests.serving import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    clean_env,
    prepare,
    serve_process,
    stderr_of,
    wait_listeners,
)
from tests.web.helpers import PageAudit

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000",
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def assert_security_headers(headers: httpx.Headers | dict[str, str]) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, value in SECURITY_HEADERS.items():
        assert lowered.get(name) == value, name
    assert "default-src 'none'" in lowered["content-security-policy"]


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "--max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=20,
    )


def parse_curl_headers(dump: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in dump.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


# --- the real process ----------------------------------------------------------------------


def test_serve_process_https_and_sigterm(settings: Settings, tmp_path: Path) -> None:
    prepare(settings)
    ca = str(settings.tls_dir / "ca.crt")
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path)
        assert list(bound) == ["https"]
        host, _, port_text = bound["https"].rpartition(":")
        assert host == "127.0.0.1" and int(port_text) > 0  # the real port, not 0

        # curl, trusting only the development CA, by IP address.
        result = curl("--cacert", ca, "--dump-header", "-", f"https://{bound['https']}/healthz")
        assert result.returncode == 0, result.stderr
        dump, _, body = result.stdout.partition("\n\n")  # text mode: CRLF read as LF
        assert dump.startswith("HTTP/1.1 200")
        assert json.loads(body) == {"status": "ok"}
        headers = parse_curl_headers(dump)
        assert_security_headers(headers)
        assert "server" not in headers

        # curl by host name (SAN DNS:<hostname>), the home page.
        result = curl(
            "--cacert",
            ca,
            "--resolve",
            f"{settings.hostname}:{port_text}:127.0.0.1",
            f"https://{settings.hostname}:{port_text}/",
        )
        assert result.returncode == 0, result.stderr
        assert "Caducée, la messagerie sécurisée de santé" in result.stdout
        assert settings.hostname in result.stdout

        # Python's ssl through httpx, TLS 1.2 at least.
        context = ssl.create_default_context(cafile=ca)
        with httpx.Client(verify=context) as client:
            response = client.get(f"https://localhost:{port_text}/healthz")
            assert response.status_code == 200
            assert response.json() == {"status": "ok"}
            assert_security_headers(response.headers)
            assert response.extensions["network_stream"].get_extra_info("ssl_object").version() in (
                "TLSv1.2",
                "TLSv1.3",
            )

        # A client that does not trust the dev CA is refused.
        result = curl(f"https://{bound['https']}/healthz")
        assert result.returncode != 0

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, stderr_of(tmp_path)
    assert not listeners_file(settings).exists()
    log = stderr_of(tmp_path)
    assert f"listener=https address={bound['https']}" in log
    assert settings.master_key_path.read_text().strip() not in log  # no secret in the logs


def test_serve_process_sigint(tmp_path: Path) -> None:
    settings = prepare(make_settings(tmp_path / "data", "sqlite", None))
    with serve_process(settings, tmp_path) as proc:
        wait_listeners(settings, proc, tmp_path)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, stderr_of(tmp_path)
    assert not listeners_file(settings).exists()


def test_master_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings = prepare(make_settings(tmp_path / "data", "sqlite", None))
    settings.master_key_path.chmod(0o644)
    with serve_process(settings, tmp_path) as proc:
        code = proc.wait(timeout=START_TIMEOUT)
    assert code != 0
    err = stderr_of(tmp_path)
    assert f"chmod 600 {settings.master_key_path}" in err
    assert "Erreur" in err
    assert not listeners_file(settings).exists()


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    settings = prepare(make_settings(tmp_path / "data", "sqlite", None), migrate=False)
    with serve_process(settings, tmp_path) as proc:
        code = proc.wait(timeout=START_TIMEOUT)
    assert code != 0
    err = stderr_of(tmp_path)
    assert "schéma" in err and "caducee migrate" in err
    assert not listeners_file(settings).exists()


def test_missing_data_dir_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "caducee", "serve", "--data", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=START_TIMEOUT,
    )
    assert result.returncode != 0
    assert "introuvable" in result.stderr and "caducee init" in result.stderr


# --- serve() in-process ----------------------------------------------------------------------


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", "sqlite", None)


async def wait_file(path: Path, task: asyncio.Task[None]) -> dict[str, str]:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while not path.exists():
        if task.done():
            task.result()
            pytest.fail("serve() returned before listeners.json was written")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("listeners.json not written")
        await asyncio.sleep(0.02)
    return dict(json.loads(path.read_text("utf-8")))


async def test_unimplemented_listeners_are_skipped(
    sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(
        prepare,
        sqlite_settings,
        {"https": "127.0.0.1:0", "lmtp": "127.0.0.1:0"},
    )
    caplog.set_level("INFO", logger="caducee")
    task = asyncio.create_task(serve(sqlite_settings))
    bound = await wait_file(listeners_file(sqlite_settings), task)
    assert list(bound) == ["https"]
    assert "service inconnu" in caplog.text and "listener=lmtp" in caplog.text
    os.kill(os.getpid(), signal.SIGTERM)  # serve() handles it; pytest is not touched
    await asyncio.wait_for(task, STOP_TIMEOUT)
    assert not listeners_file(sqlite_settings).exists()


@pytest.mark.parametrize(
    "address",
    [
        "8443",
        "127.0.0.1:",
        ":443",
        "127.0.0.1:99999",
        "::1:443",
        "[::1]443",
        "127.0.0.1:84x3",
        "[zz]:443",
        "local host:443",
    ],
)
async def test_unparsable_address(sqlite_settings: Settings, address: str) -> None:
    await asyncio.to_thread(prepare, sqlite_settings, {"https": address})
    with pytest.raises(ConfigurationError) as info:
        await serve(sqlite_settings)
    assert "invalide" in info.value.fr and "hôte:port" in info.value.fr
    assert not listeners_file(sqlite_settings).exists()


def test_parse_address() -> None:
    assert parse_address("https", "0.0.0.0:443") == ListenAddress("0.0.0.0", 443)
    assert parse_address("https", "[::]:8443") == ListenAddress("::", 8443)
    assert parse_address("https", "localhost:0") == ListenAddress("localhost", 0)
    assert str(ListenAddress("::1", 993)) == "[::1]:993"


async def test_port_in_use(sqlite_settings: Settings) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        await asyncio.to_thread(prepare, sqlite_settings, {"https": f"127.0.0.1:{port}"})
        with pytest.raises(ConfigurationError) as info:
            await serve(sqlite_settings)
    assert f"Le port {port}" in info.value.fr and "déjà utilisé" in info.value.fr
    assert not listeners_file(sqlite_settings).exists()


async def test_missing_tls_certificate(sqlite_settings: Settings) -> None:
    await asyncio.to_thread(prepare, sqlite_settings)
    (sqlite_settings.tls_dir / "server.crt").unlink()
    with pytest.raises(ConfigurationError, match="Certificat TLS introuvable"):
        await serve(sqlite_settings)
    assert not listeners_file(sqlite_settings).exists()


async def test_second_serve_on_the_same_data_dir_is_refused(sqlite_settings: Settings) -> None:
    await asyncio.to_thread(prepare, sqlite_settings)
    published = listeners_file(sqlite_settings)
    published.parent.mkdir(parents=True, exist_ok=True)
    published.write_text('{"https": "127.0.0.1:8443"}')  # as the running node wrote it
    # single_instance: held here as by the running node.
    with single_instance(sqlite_settings), pytest.raises(ConfigurationError) as info:
        await serve(sqlite_settings)
    assert "utilise déjà" in info.value.fr and str(os.getpid()) in info.value.fr
    assert published.read_text() == '{"https": "127.0.0.1:8443"}'  # left alone


def ipv6_available() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback here")
async def test_any_ipv6_address_also_serves_ipv4(sqlite_settings: Settings) -> None:
    async with opened(sqlite_settings) as app:
        listener = HttpsListener(app, parse_address("https", "[::]:0"))
        address = await listener.start()
        try:
            assert address.host == "::" and address.port > 0
            context = ssl.create_default_context(cafile=str(sqlite_settings.tls_dir / "ca.crt"))
            async with httpx.AsyncClient(verify=context) as client:
                for host in ("127.0.0.1", "[::1]"):
                    response = await client.get(f"https://{host}:{address.port}/healthz")
                    assert response.json() == {"status": "ok"}, host
        finally:
            await listener.stop(grace=1)


# --- graceful stop of the HTTPS listener ------------------------------------------------------


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[App]:
    await asyncio.to_thread(prepare, settings)
    async with open_app(settings) as app:
        yield app


def slow_app(started: threading.Event, seconds: float) -> Starlette:
    async def slow(request: Request) -> Response:
        started.set()
        await asyncio.sleep(seconds)
        return PlainTextResponse("fini")

    return Starlette(routes=[Route("/slow", slow)])


def fetch_in_thread(url: str, ca: Path) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def go() -> None:
        try:
            with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as client:
                outcome.append(client.get(url, timeout=30))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    return thread, outcome


async def test_stop_finishes_in_flight_request(sqlite_settings: Settings) -> None:
    async with opened(sqlite_settings) as app:
        started = threading.Event()
        listener = HttpsListener(
            app, ListenAddress("127.0.0.1", 0), asgi_app=slow_app(started, 1.0)
        )
        address = await listener.start()
        thread, outcome = fetch_in_thread(
            f"https://{address}/slow", sqlite_settings.tls_dir / "ca.crt"
        )
        assert await asyncio.to_thread(started.wait, 10)
        await listener.stop(grace=5)
        await asyncio.to_thread(thread.join, 10)
        (response,) = outcome
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 200 and response.text == "fini"
        # No longer accepting.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", address.port), timeout=2).close()


async def test_stop_is_bounded(sqlite_settings: Settings) -> None:
    async with opened(sqlite_settings) as app:
        started = threading.Event()
        listener = HttpsListener(
            app, ListenAddress("127.0.0.1", 0), asgi_app=slow_app(started, 3600)
        )
        address = await listener.start()
        thread, outcome = fetch_in_thread(
            f"https://{address}/slow", sqlite_settings.tls_dir / "ca.crt"
        )
        assert await asyncio.to_thread(started.wait, 10)
        began = time.monotonic()
        await listener.stop(grace=1)
        assert time.monotonic() - began < 6
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()
        assert outcome and not (
            isinstance(outcome[0], httpx.Response) and outcome[0].status_code == 200
        )


# --- the status web app --------------------------------------------------------------------


def asgi_client(app: App) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_web_app(app)), base_url="https://test"
    )


async def test_home_page(app: App) -> None:
    async with asgi_client(app) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<html lang="fr">' in page
    assert "Caducée, la messagerie sécurisée de santé" in page
    assert app.settings.hostname in page
    assert "0.1.0" in page or "inconnue" in page
    # Styled like every page, links to the professionals' login; no inline script or style.
    assert '<link rel="stylesheet" href="/static/caducee.css">' in page
    assert 'href="/connexion"' in page and 'id="patients"' in page
    audit = PageAudit()
    audit.feed(page)
    assert audit.problems == []
    assert_security_headers(response.headers)


async def test_home_page_in_english(app: App) -> None:
    async with asgi_client(app) as client:
        page = (await client.get("/", headers={"Accept-Language": "en"})).text
    assert '<html lang="en">' in page and "Health professionals" in page


async def test_home_page_escapes_hostname(app: App) -> None:
    app.settings.hostname = "<b>mail</b>.example"
    async with asgi_client(app) as client:
        page = (await client.get("/")).text
    assert "<b>" not in page and "&lt;b&gt;mail&lt;/b&gt;.example" in page


async def test_healthz(app: App) -> None:
    async with asgi_client(app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_security_headers(response.headers)


async def test_readyz_reports_a_dead_database_and_healthz_stays_alive(
    app: App, tmp_path: Path
) -> None:
    dead = Database(f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}")
    threads_before = set(threading.enumerate())
    try:
        async with asgi_client(dataclasses.replace(app, db=dead)) as client:
            alive = await client.get("/healthz")
            response = await client.get("/readyz")
    finally:
        await dead.dispose()
        # aiosqlite's worker thread of a failed connect hands its last result back to this loop:
        # let it finish while the loop still runs (else it finds the loop closed).
        # (The loop's own executor threads, which the readiness checks use, stay.)
        for thread in set(threading.enumerate()) - threads_before:
            if not thread.name.startswith("asyncio_"):
                await asyncio.to_thread(thread.join, 5)
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    database = next(c for c in body["checks"] if c["name"] == "database")
    assert database["status"] == "fail" and "base de données injoignable" in database["message"]
    assert_security_headers(response.headers)


async def test_security_headers_on_errors(app: App) -> None:
    async with asgi_client(app) as client:
        missing = await client.get("/nulle-part")
        wrong_method = await client.post("/healthz")
    assert missing.status_code == 404
    assert_security_headers(missing.headers)
    assert wrong_method.status_code == 405
    assert_security_headers(wrong_method.headers)
