"""PostgreSQL restarted during an SMTP load (issue 20): while it is down clients get ``4xx``
(never a ``250`` without storage, never a crash), an IMAP session gets ``NO [UNAVAILABLE]``;
the node reconnects by itself, the load resumes, the same IMAP session works again, IDLE wakes
again, and nothing acknowledged is lost. A cluster of its own: restarting the shared one would
cut the other tests."""

from __future__ import annotations

import imaplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from caducee.config import Settings
from tests.conftest import make_settings
from tests.dnsserver import LocalDNS
from tests.faults.load import (
    Load,
    audit_verify,
    check_read_back,
    imap_client,
    read_back,
    running,
    setup_account,
    until,
)
from tests.pgcluster import PgCluster, find_pg_bin

#: How long the database stays down while the load goes on (seconds).
OUTAGE = 4.0


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    bin_dir = find_pg_bin()
    assert bin_dir is not None, "PostgreSQL binaries not found (Debian package postgresql)"
    cluster = PgCluster(bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_settings(own_cluster: PgCluster, tmp_path: Path, test_dns: LocalDNS) -> Settings:
    return make_settings(
        tmp_path / "data", "postgres", own_cluster, dns_resolver=test_dns.resolver_spec
    )


def status(client: imaplib.IMAP4_SSL) -> tuple[str, bytes]:
    typ, data = client.status("INBOX", "(MESSAGES)")
    return typ, data[0] if data and isinstance(data[0], bytes) else b""


def test_database_restart_during_an_smtp_load(
    own_cluster: PgCluster, pg_settings: Settings, tmp_path: Path
) -> None:
    password = setup_account(pg_settings, workers=1)
    with running(pg_settings, tmp_path / "node") as node:
        session = imap_client(node, password)
        session.select("INBOX")
        load = Load(node.ports["smtp"], node.context(), connections=3).start()
        try:
            load.wait_for(40)
            own_cluster.pause()
            down_at = time.monotonic()
            # IMAP: the session stays, its commands that need the database are refused.
            typ, text = status(session)
            assert typ == "NO" and b"[UNAVAILABLE]" in text, (typ, text)
            time.sleep(OUTAGE)
            acknowledged_while_down = load.count()
            own_cluster.resume()
            up_at = time.monotonic()
            # The load resumes by itself: new 250s after the restart.
            load.wait_for(acknowledged_while_down + 30)
        finally:
            load.finish()
        assert node.proc.poll() is None, "the node crashed"
        refusals = [(code, text) for when, code, text in load.replies if down_at <= when <= up_at]
        assert refusals, "no client was refused while the database was down"
        assert all(400 <= code < 500 for code, _ in refusals), refusals[:5]
        assert any(code == 451 and "4.3.0" in text for code, text in refusals), refusals[:5]
        # The same IMAP session works again (the node's connections were renewed).
        until(lambda: status(session)[0] == "OK", "STATUS answered again")
        session.logout()
        found = read_back(node, password)
        check_read_back(load, found)
        # IDLE wakes again (the node's LISTEN connection came back).
        idler = imap_client(node, password)
        idler.select("INBOX")
        tag = idler._new_tag()  # type: ignore[attr-defined]
        idler.send(tag + b" IDLE\r\n")
        assert idler.readline().startswith(b"+")
        again = Load(node.ports["smtp"], node.context(), connections=1).start()
        try:
            again.wait_for(1)
        finally:
            again.finish()
        assert b"EXISTS" in idler.readline()
        idler.send(b"DONE\r\n")
        idler.logout()
    print(
        f"PostgreSQL restart: {len(load.acknowledged)} acknowledged, {len(found)} read back, "
        f"{len(refusals)} refusals while down ({refusals[0][0]} {refusals[0][1][:60]})"
    )
    verified = audit_verify(pg_settings)
    assert verified.returncode == 0, verified.stdout + verified.stderr
