"""The schema guard of a rolling upgrade (issue 20), with real ``caducee serve`` processes on both
backends: a node whose code expects a newer schema refuses to serve until ``caducee migrate``;
a node of the previous revision keeps serving on a newer schema whose newer migrations are all
additive, and refuses one whose are not.

A schema newer than this code is what a later release's ``caducee migrate`` leaves: a revision
this code has no module for, in ``alembic_version``, with the row it writes in
``schema_compat`` (see ``store.migrate``). The tests write exactly that.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.services.app_passwords import create_app_password
from caducee.store import migrate
from caducee.store.database import Database
from caducee.store.tables import schema_compat
from tests.services.helpers import person, practice
from tests.serving import clean_env, prepare, serve_process, stderr_of, wait_listeners

LOGIN = "dr@cabinet.test"
LISTENERS = {"smtp": "127.0.0.1:0", "imaps": "127.0.0.1:0"}
NEXT = "9999"  # a revision of a later release


def caducee(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caducee", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=180,
    )


def previous_revision() -> str:
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_revision(
        migrate.head_revision()
    )
    assert head is not None and isinstance(head.down_revision, str)
    return head.down_revision


def refused(settings: Settings, tmp_path: Path) -> str:
    """Start ``serve``; it must exit without listening. Its message, on one line."""
    with serve_process(settings, tmp_path) as proc:
        assert proc.wait(120) != 0
    return " ".join(stderr_of(tmp_path).split())


def later_release_migrated(settings: Settings, oldest_compatible: str) -> None:
    """What a later release's ``caducee migrate`` leaves: a new table, its revision, and the
    oldest code revision it says may still serve."""

    async def go() -> None:
        db = Database(settings.effective_database_url)
        try:
            async with db.write() as conn:
                await conn.execute(text("CREATE TABLE future_feature (id INTEGER PRIMARY KEY)"))
                await conn.execute(text(f"UPDATE alembic_version SET version_num = '{NEXT}'"))
                await conn.execute(schema_compat.delete())
                await conn.execute(
                    schema_compat.insert().values(
                        revision=NEXT, oldest_compatible=oldest_compatible
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(go())


async def revision_of(settings: Settings) -> str | None:
    db = Database(settings.effective_database_url)
    try:
        return await migrate.current_revision(db)
    finally:
        await db.dispose()


async def test_migrate_records_which_code_may_serve(app: App) -> None:
    head = migrate.head_revision()
    async with app.db.read() as conn:
        rows = (await conn.execute(select(schema_compat))).all()
    assert [(r.revision, r.oldest_compatible) for r in rows] == [
        (head, migrate.oldest_compatible())
    ]
    # The head (0039, a nullable column) and 0038 (new tables only) are additive: the code
    # before them may serve on it; a migration that is not (0035 ... 0033 alters tables) stops
    # the walk.
    assert migrate.oldest_compatible(previous_revision()) == "0035"
    assert migrate.oldest_compatible() == "0035"
    assert migrate.oldest_compatible("0033") == "0033"
    assert (await migrate.schema_state(app.db)).status == "same"


def test_a_node_expecting_a_newer_schema_refuses_until_migrated(
    settings: Settings, tmp_path: Path
) -> None:
    prepare(settings, LISTENERS, migrate=False)
    older = previous_revision()

    async def migrate_to_previous() -> None:
        db = Database(settings.effective_database_url)
        try:

            def run(conn: Connection) -> None:
                command.upgrade(migrate.alembic_config(conn), older)

            async with db.write() as conn:
                await conn.run_sync(run)
        finally:
            await db.dispose()

    asyncio.run(migrate_to_previous())
    message = refused(settings, tmp_path)
    assert f"révision {older}, ce nœud attend la révision {migrate.head_revision()}" in message
    assert "caducee migrate" in message
    done = caducee("migrate", "--data", str(settings.data_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    with serve_process(settings, tmp_path) as proc:
        assert set(wait_listeners(settings, proc, tmp_path, timeout=120)) == set(LISTENERS)


def test_a_node_of_the_previous_revision_keeps_serving_on_an_additive_migration(
    settings: Settings, tmp_path: Path
) -> None:
    prepare(settings, LISTENERS)

    async def account() -> str:
        async with open_app(settings) as app:
            await practice(app)
            await person(app, LOGIN)
            return await create_app_password(app, LOGIN, "guard")

    password = asyncio.run(account())
    later_release_migrated(settings, oldest_compatible=migrate.head_revision())
    with serve_process(settings, tmp_path) as proc:
        ports = {
            name: int(address.rsplit(":", 1)[1])
            for name, address in wait_listeners(settings, proc, tmp_path, timeout=120).items()
        }
        context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
        body = (
            f"From: a@ailleurs.test\r\nTo: {LOGIN}\r\nSubject: pendant la migration\r\n"
            "Message-ID: <migration@ailleurs.test>\r\n\r\nBonjour.\r\n"
        )
        with smtplib.SMTP("127.0.0.1", ports["smtp"], local_hostname="mx.ailleurs.test") as mx:
            mx.starttls(context=context)
            assert mx.sendmail("a@ailleurs.test", [LOGIN], body) == {}
        client = imaplib.IMAP4_SSL("localhost", ports["imaps"], ssl_context=context, timeout=30)
        client.login(LOGIN, password)
        client.select("INBOX")
        _, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"pendant la migration" in data[0][1]  # type: ignore[index]
        client.logout()
    doctor = " ".join(caducee("doctor", "--data", str(settings.data_dir)).stdout.split())
    assert f"schéma en révision {NEXT}, plus récente que ce nœud" in doctor
    # caducee migrate of the older code leaves the newer schema as it is.
    assert caducee("migrate", "--data", str(settings.data_dir)).returncode == 0
    assert asyncio.run(revision_of(settings)) == NEXT


def test_a_node_refuses_a_newer_schema_that_is_not_additive(
    settings: Settings, tmp_path: Path
) -> None:
    prepare(settings, LISTENERS)
    later_release_migrated(settings, oldest_compatible=NEXT)
    message = refused(settings, tmp_path)
    assert f"révision {NEXT}, plus récente que celle de ce nœud" in message
    assert "installez sur ce nœud la version des autres nœuds" in message
    migrating = caducee("migrate", "--data", str(settings.data_dir))
    assert migrating.returncode != 0
    assert "installez sur ce nœud" in " ".join((migrating.stdout + migrating.stderr).split())
    assert asyncio.run(revision_of(settings)) == NEXT
