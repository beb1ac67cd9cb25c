"""Nothing sensitive is stored in clear: proved by searching the data dir and a pg_dump."""

from __future__ import annotations

import secrets
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update

from caducee.app import App
from caducee.errors import IntegrityError, LimitReached
from caducee.services import mailboxes, messages, text_index
from caducee.store.tables import blobs
from caducee.store.tables import messages as messages_table
from tests.pgcluster import PgCluster
from tests.services.helpers import person, practice


def health_message(marker: str, to: str, scan_bytes: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Dr {marker}-Nom <confrere@ailleurs.test>"
    msg["To"] = to
    msg["Subject"] = f"Résultats {marker}-sujet"
    msg.set_content(f"Patient {marker}-corps : HbA1c 7,2 %\n")
    msg.add_attachment(
        f"compte rendu {marker}-pj".encode(),
        maintype="application",
        subtype="octet-stream",
        filename="cr.bin",
    )
    if scan_bytes:  # a large attachment: the blob goes to a file, not a database row
        msg.add_attachment(
            secrets.token_bytes(scan_bytes), maintype="image", subtype="png", filename="scan.png"
        )
    return bytes(msg)


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


async def test_marker_nowhere_in_clear(
    app: App, backend: str, request: pytest.FixtureRequest
) -> None:
    marker = "ZQX" + secrets.token_hex(8).upper()
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    stored = await messages.store_message(app, box.id, "INBOX", health_message(marker, box.address))
    large = health_message(marker, box.address, scan_bytes=app.settings.blob_inline_max)
    stored_large = await messages.store_message(app, box.id, "INBOX", large)
    assert (await messages.read_message(app, stored_large.id))[1] == large

    # The service reads everything back…
    message, raw = await messages.read_message(app, stored.id)
    assert f"{marker}-corps".encode() in raw and f"{marker}-pj".encode() not in raw  # base64 part
    assert marker in str(message.meta["subject"]) and marker in str(message.meta["from"])
    assert marker in str(message.meta["snippet"])

    # …but neither the marker nor its base64 form (attachment) is anywhere at rest.
    import base64

    # The full-text index of the message exists too (it is what SEARCH TEXT uses).
    await text_index.indexer(app).drain()
    assert stored.id in await text_index.load_filters(app, [(stored.id, stored.blob_id)])

    needles = [marker.encode(), base64.b64encode(f"compte rendu {marker}-pj".encode())[:16]]
    needles.append(marker.lower().encode())  # the index's words are casefolded
    assert files_containing(app.settings.data_dir, needles) == []
    if backend == "postgres":
        pg: PgCluster = request.getfixturevalue("pg_cluster")
        dbname = app.settings.database_url.rsplit("/", 1)[1]
        dump = pg.dump(dbname)
        assert b"COPY public.messages" in dump and b"COPY public.blobs" in dump
        assert b"COPY public.message_text_index" in dump
        assert all(n not in dump for n in needles)
    else:
        assert (app.settings.data_dir / "db.sqlite3").exists()
        # the small message's blob is a database row, the large one's a file: both were searched
        assert [p.name for p in app.settings.blobs_dir.rglob("*") if p.is_file()] == [
            stored_large.blob_id
        ]
        async with app.db.read() as conn:
            rows = (await conn.execute(select(blobs.c.id))).scalars().all()
        assert stored.blob_id in rows and stored_large.blob_id not in rows


async def test_sealed_metadata_is_bound_to_its_record(app: App) -> None:
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    first = await messages.store_message(app, box.id, "INBOX", health_message("A1", box.address))
    second = await messages.store_message(app, box.id, "INBOX", health_message("B2", box.address))
    async with app.db.write() as conn:
        sealed = await conn.scalar(
            select(messages_table.c.meta_sealed).where(messages_table.c.id == first.id)
        )
        await conn.execute(
            update(messages_table)
            .where(messages_table.c.id == second.id)
            .values(meta_sealed=sealed)
        )
    with pytest.raises(IntegrityError, match="déchiffrement"):
        await messages.read_message(app, second.id)
    assert (await messages.read_message(app, first.id))[0].uid == 1


async def test_quota_refuses_and_counts(app: App) -> None:
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    await mailboxes.set_quota(app, box.address, 1024 * 1024)
    big = b"Subject: x\r\n\r\n" + b"a" * (700 * 1024)
    await messages.store_message(app, box.id, "INBOX", big)
    with pytest.raises(LimitReached, match="pleine"):
        await messages.store_message(app, box.id, "INBOX", big)
    assert (await mailboxes.get_mailbox(app, box.address)).used_bytes == len(big)
