"""The SEARCH BODY/TEXT prefilter: never a false negative, no word in clear, kept in step."""

from __future__ import annotations

import random
import secrets

from hypothesis import given, settings
from hypothesis import strategies as st

from caducee.app import App
from caducee.domain.message_text import Text, extract_text
from caducee.services import mailstore, messages, text_index
from tests.services.helpers import person, practice

KEY = secrets.token_bytes(32)
ALPHABET = "abcdeéèfghijklmnopqrstuvwxyzßÆœ0123 -.'\n"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet=ALPHABET, max_size=300),
    start=st.integers(0, 300),
    size=st.integers(0, 40),
)
def test_every_substring_passes_the_filter(text: str, start: int, size: int) -> None:
    """Whatever the text, any of its substrings gets through: no false negatives."""
    body = text.casefold()
    table = text_index.build(KEY, Text({}, body))
    needle = body[start : start + size]
    assert text_index.may_contain(table, text_index.needle_hashes(KEY, needle))


def test_absent_words_are_filtered_out_and_headers_count() -> None:
    raw = (
        b"From: Labo <labo@ailleurs.test>\r\nSubject: =?utf-8?q?H=C3=A9moglobine?=\r\n\r\n"
        b"Bilan sanguin normal.\r\n"
    )
    table = text_index.build(KEY, extract_text(raw))
    for present in ("sanguin", "anguin", "HÉMOGLOBINE", "bilan sanguin", "labo@ailleurs"):
        assert text_index.may_contain(table, text_index.needle_hashes(KEY, present)), present
    for absent in ("ordonnance", "chimiothérapie", "vaccination"):
        assert not text_index.may_contain(table, text_index.needle_hashes(KEY, absent)), absent
    assert text_index.needle_hashes(KEY, "ab c") == []  # too short to filter anything


def test_the_filter_depends_on_the_key() -> None:
    text = Text({}, "ordonnance renouvelée pour trois mois")
    assert text_index.build(KEY, text) != text_index.build(secrets.token_bytes(32), text)


async def test_delivered_messages_are_indexed_and_expunge_removes_their_filters(app: App) -> None:
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    stored = await messages.store_message(
        app, box.id, "INBOX", b"Subject: suivi\r\n\r\nordonnance de kinesitherapie\r\n"
    )
    await text_index.indexer(app).drain()
    filters = await text_index.load_filters(app, [(stored.id, stored.blob_id)])
    key = await text_index.mailbox_index_key(app, box.id)
    assert text_index.may_contain(filters[stored.id], text_index.needle_hashes(key, "kinesi"))
    await messages.expunge_messages(
        app, stored.folder_id, [stored.id], actor="dr@cabinet.test", source="test"
    )
    text_index.filter_cache(app).clear()
    assert await text_index.load_filters(app, [(stored.id, stored.blob_id)]) == {}
    assert await mailstore.fetch_rows(app, stored.folder_id, None) == {}


async def test_a_filter_never_serves_another_message_with_the_same_id(app: App) -> None:
    """SQLite reuses the id of the last deleted row: a filter (in memory, in the table, or
    offered to the indexer before the expunge) counts only for the blob it was built from."""
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    first = await messages.store_message(app, box.id, "INBOX", b"Subject: a\r\n\r\nradio\r\n")
    key = await text_index.mailbox_index_key(app, box.id)
    stale = {(first.id, first.blob_id): text_index.build(key, Text({}, "radio"))}
    await messages.expunge_messages(
        app, first.folder_id, [first.id], actor="dr@cabinet.test", source="test"
    )
    second = await messages.store_message(app, box.id, "INBOX", b"Subject: b\r\n\r\nscanner\r\n")
    await text_index.store_filters(app, stale)  # the indexer, late, for the expunged message
    await text_index.indexer(app).drain()
    filters = await text_index.load_filters(app, [(second.id, second.blob_id)])
    assert text_index.may_contain(filters[second.id], text_index.needle_hashes(key, "scanner"))


def test_the_trigram_cache_stays_bounded_and_filters_stay_right() -> None:
    """Messages of several mailboxes full of tokens never seen before (reference numbers,
    digests, identifiers: here random words of a large script) bring new trigrams each time:
    the worker's cache of their hashes stays within its bound, all mailboxes together, and
    what it forgets changes no filter."""
    rng = random.Random(20)
    letters = [chr(0x4E00 + i) for i in range(400)]  # CJK ideographs: word characters
    keys = [secrets.token_bytes(32) for _ in range(3)]
    usual = Text({}, "bilan sanguin normal, hémoglobine glyquée")
    before = {key: text_index.build(key, usual) for key in keys}
    cache = text_index._hashes
    highest = 0
    for number in range(3 * text_index._TrigramHashes.MAX // 2000):
        body = " ".join("".join(rng.choices(letters, k=20)) for _ in range(110))
        text_index.build(keys[number % len(keys)], Text({}, body))
        held = sum(len(known) for known in cache.by_key.values())
        highest = max(highest, held)
        assert held <= text_index._TrigramHashes.MAX
    assert highest > text_index._TrigramHashes.MAX * 0.9  # the bound was reached
    for key in keys:
        assert text_index.build(key, usual) == before[key]
        assert text_index.may_contain(before[key], text_index.needle_hashes(key, "sanguin"))
