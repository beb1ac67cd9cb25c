"""The compressed blocks of a large folder's IMAP structures (issue 17): every UID gets back
exactly its own structure, absent UIDs get nothing, a UIDVALIDITY change forgets them, and
a full sync's second pass reads them instead of the database (both backends)."""

from __future__ import annotations

import random

from sqlalchemy import update

from caducee.app import App
from caducee.services import mailboxes, mailstore
from caducee.services.delivery import deliver_local
from caducee.services.messages import expunge_messages
from caducee.services.structure_blocks import (
    BLOCK_SIZE,
    BLOCKS_CACHE_BYTES,
    FolderBlocks,
    build_blocks,
    structure_blocks,
)
from caducee.store.tables import messages
from tests.services.helpers import person, practice

LOGIN = "dr@cabinet.test"


def structures(uids: list[int]) -> dict[int, bytes]:
    """Distinct byte strings of varied lengths, as compact structures are."""
    rng = random.Random(7)
    return {
        uid: b"(%d " % uid + rng.randbytes(rng.randrange(0, 40)) + b" NIL)" * rng.randrange(1, 9)
        for uid in uids
    }


def test_each_uid_gets_its_own_structure() -> None:
    uids = sorted(random.Random(3).sample(range(1, 2_000), 300))  # gaps between UIDs
    held = structures(uids)
    blocks = FolderBlocks(5, (), ()).adding(build_blocks(held))
    assert len(blocks.blocks) == -(-300 // BLOCK_SIZE)
    absent = [0, uids[0] - 1, uids[-1] + 1, 10_000, *(u + 1 for u in uids if u + 1 not in held)]
    found = blocks.find([*reversed(uids), *absent])  # any order
    assert found == held
    assert blocks.nbytes < sum(len(v) for v in held.values()) + 200 * len(blocks.blocks) * 2


def test_blocks_added_later_and_overlaps() -> None:
    first = structures(list(range(1, 101)))
    later = structures(list(range(101, 151)))
    blocks = FolderBlocks(1, (), ()).adding(build_blocks(first))
    grown = blocks.adding(build_blocks(later))
    assert grown.find(range(1, 160)) == first | later
    assert blocks.find(range(101, 151)) == {}  # the earlier set is unchanged
    # Two sessions read the same messages: the second copy is left out, nothing doubles.
    again = grown.adding(build_blocks(first))
    assert again.firsts == grown.firsts
    assert again.nbytes == grown.nbytes


async def test_full_sync_reads_the_blocks(app: App) -> None:
    await practice(app)
    await person(app, LOGIN)
    for n in range(BLOCK_SIZE + 20):
        parts = n % 3 + 1
        body = "".join(
            f"--b\r\nContent-Type: text/plain; name=p{p}.txt\r\n\r\npart {p} of {n}\r\n"
            for p in range(parts)
        )
        raw = (
            f"From: Sender {n} <s{n}@labo.test>\r\nTo: {LOGIN}\r\nSubject: message {n}\r\n"
            f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            f"{body}--b--\r\n"
        )
        await deliver_local(app, raw.encode(), [LOGIN])
    box = await mailboxes.get_mailbox(app, LOGIN)
    [inbox] = [f for f in await mailboxes.list_folders(app, box.id) if f.name == "INBOX"]
    rows = sorted((await mailstore.fetch_rows(app, inbox.id, None)).values(), key=lambda r: r.uid)
    truth = await mailstore.load_structures(app, rows)  # the per-message path
    mailstore.structure_cache(app).clear()

    first = await mailstore.load_structures(app, rows, keep=False, folder=inbox)
    assert first == truth
    assert mailstore.structure_cache(app).entries == {}  # not kept per message...
    held = structure_blocks(app).of(inbox.id, inbox.uidvalidity)
    assert sorted(held.find(r.uid for r in rows)) == [r.uid for r in rows]  # ...but in blocks

    # Read again: from the blocks, even with the database's copies made unreadable.
    async with app.db.write() as conn:
        await conn.execute(update(messages).values(imap_sealed=b"\x00" * 40))
    again = await mailstore.load_structures(app, rows[::-1], keep=False, folder=inbox)
    assert again == truth

    # An expunged message is never asked again; a new one is read and added.
    await expunge_messages(app, inbox.id, [rows[0].id], actor=LOGIN, source="test")
    await deliver_local(app, f"Subject: late\r\nTo: {LOGIN}\r\n\r\nlate\r\n".encode(), [LOGIN])
    now = sorted((await mailstore.fetch_rows(app, inbox.id, None)).values(), key=lambda r: r.uid)
    late = now[-1]
    got = await mailstore.load_structures(app, now, keep=False, folder=inbox)
    assert {k: v for k, v in got.items() if k != late.id} == {
        k: v for k, v in truth.items() if k != rows[0].id
    }
    assert b"late" in got[late.id].envelope

    # A new UIDVALIDITY (the folder recreated) forgets every block of the folder.
    assert structure_blocks(app).of(inbox.id, inbox.uidvalidity + 1).blocks == ()


async def test_the_cache_weighs_what_it_holds(app: App) -> None:
    cache = structure_blocks(app)
    big = build_blocks({uid: random.randbytes(4_000) for uid in range(1, 1 + 2 * BLOCK_SIZE)})
    cache.add(1, 1, big)
    assert cache.size == sum(b.nbytes for b in big) < BLOCKS_CACHE_BYTES
    assert cache.of(1, 1).find([1, 2 * BLOCK_SIZE]).keys() == {1, 2 * BLOCK_SIZE}
