"""The whitelist in force: import on both backends, lookups, status, scheduled refresh over HTTP
(a real local web server), and the last good list kept when a refresh fails."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import func, select

from caducee.app import App
from caducee.errors import InvalidInput
from caducee.health import trust_list
from caducee.health.whitelist import canonical_dn
from caducee.services import audit
from caducee.store.tables import trust_domains
from tests.health.whitelists import national_list, operator_dn, whitelist_xml


class _Files(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    files: ClassVar[dict[str, bytes]] = {}
    handler = type("Handler", (_Files,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


async def _audit(app: App, action: str) -> list[audit.AuditRecord]:
    return [r async for r in audit.iter_records(app.db) if r.action == action]


async def test_import_then_lookup(app: App) -> None:
    report = await trust_list.import_whitelist(app, national_list(3000), source="test")
    assert (report.domain_count, report.entry_count, report.unchanged) == (3000, 3300, False)
    assert await trust_list.is_listed(app, "etab42.mssante.fr")
    assert await trust_list.is_listed(app, "ETAB42.mssante.fr.")
    assert not await trust_list.is_listed(app, "inconnu.fr")
    assert await trust_list.allowed_dns(app, "etab20.mssante.fr") == {
        canonical_dn(operator_dn(20)),
        canonical_dn(operator_dn(100_020)),
    }
    state = await trust_list.status(app)
    assert state.info is not None and state.info.domain_count == 3000
    assert state.info.generated_at == datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    records = await _audit(app, "trust.import")
    assert len(records) == 1 and '"domains": 3000' in records[0].details


async def test_a_new_list_replaces_the_old_one_whole(app: App) -> None:
    await trust_list.import_whitelist(app, national_list(500))
    newer = whitelist_xml([("nouveau.mssante.fr", operator_dn(1))], generated="2026-11-28T03:00:00")
    await trust_list.import_whitelist(app, newer)
    assert await trust_list.is_listed(app, "nouveau.mssante.fr")
    assert not await trust_list.is_listed(app, "etab1.mssante.fr")
    async with app.db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(trust_domains)) == 1
    again = await trust_list.import_whitelist(app, newer)
    assert again.unchanged


async def test_bad_file_or_checksum_keeps_the_list_in_force(app: App) -> None:
    good = national_list(50)
    await trust_list.import_whitelist(app, good)
    with pytest.raises(InvalidInput):
        await trust_list.import_whitelist(app, b"<ListeBlancheMSSante>")
    with pytest.raises(InvalidInput, match="ne correspond pas"):
        await trust_list.import_whitelist(
            app, national_list(3), checksum=hashlib.sha256(good).hexdigest()
        )
    assert await trust_list.is_listed(app, "etab49.mssante.fr")
    # The refused imports are audited as the accepted one is: who, what file, why (its kind).
    records = await _audit(app, "trust.import")
    assert [r.result for r in records] == ["ok", "failed", "failed"]
    assert '"error": "InvalidInput"' in records[1].details
    assert hashlib.sha256(b"<ListeBlancheMSSante>").hexdigest() in records[1].details
    assert "ne correspond pas" not in records[2].details  # the kind, never the text


async def test_stale_when_older_than_the_maximum_age(app: App) -> None:
    assert (await trust_list.status(app)).stale  # no list at all
    old = (datetime.now(UTC) - timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%S")
    await trust_list.import_whitelist(app, national_list(5, generated=old))
    assert (await trust_list.status(app)).stale
    fresh = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    await trust_list.import_whitelist(app, national_list(5, generated=fresh))
    assert not (await trust_list.status(app)).stale


async def test_refresh_downloads_with_checksum_and_keeps_last_good_on_failure(
    app: App, web_server: tuple[str, dict[str, bytes]]
) -> None:
    base, files = web_server
    data = national_list(1000)
    files["/liste.xml"] = data
    files["/liste.xml.sha256"] = f"{hashlib.sha256(data).hexdigest()}  liste.xml\n".encode()
    settings = dataclasses.replace(
        app.settings,
        trust_list_url=f"{base}/liste.xml",
        trust_list_checksum_url=f"{base}/liste.xml.sha256",
    )
    refresher = trust_list.TrustListRefresher(dataclasses.replace(app, settings=settings))
    report = await refresher.refresh_once()
    assert report is not None and report.domain_count == 1000

    files["/liste.xml"] = data[: len(data) // 2]  # a truncated download
    assert await refresher.refresh_once() is None
    del files["/liste.xml"]  # the server answers 404
    assert await refresher.refresh_once() is None
    assert await trust_list.is_listed(app, "etab999.mssante.fr")
    # Each refused download is audited once, by the import itself.
    imports = await _audit(app, "trust.import")
    assert [r.result for r in imports] == ["ok", "failed", "failed"]
    assert all(r.actor == "system" and r.source == "system" for r in imports)
    assert '"error": "InvalidInput"' in imports[1].details
    assert '"error": "TemporaryFailure"' in imports[2].details
    assert await _audit(app, "trust.refresh") == []


async def test_only_files_and_http_urls_are_read(tmp_path: Path) -> None:
    for location in ("file:///etc/passwd", "ftp://exemple.fr/liste.xml"):
        with pytest.raises(InvalidInput, match="http"):
            await trust_list.read_source(location)
    with pytest.raises(InvalidInput, match="impossible"):
        await trust_list.read_source(str(tmp_path / "absent.xml"))
