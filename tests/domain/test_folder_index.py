"""The compact sequence map (domain.folder_index): it answers like the dict of entries it
replaced, through updates, deletions and additions (RFC 3501 §2.3.1.2)."""

from __future__ import annotations

import pytest

from caducee.domain.folder_index import FolderIndex
from caducee.domain.model import Flag, IndexEntry


def test_reads_and_writes_like_a_dict_of_entries() -> None:
    index = FolderIndex([(3, 30, Flag.SEEN, "", 7), (5, 50, 0, "$Urgent", 8), (9, 90, 0, "", 9)])
    assert len(index) == 3 and list(index.uids) == [3, 5, 9]
    assert index[5] == IndexEntry(5, 50, 0, "$Urgent", 8)
    assert index.get(4) is None and 4 not in index and 9 in index
    assert index.first_without(Flag.SEEN) == 2 and index.keywords() == {"$Urgent"}
    copy = index.copy()
    index[5] = IndexEntry(5, 50, Flag.SEEN, "", 10)
    assert index[5] == IndexEntry(5, 50, Flag.SEEN, "", 10) and index.keywords() == set()
    assert copy[5].keywords == "$Urgent"  # a copy is a session's own
    index[12] = IndexEntry(12, 120, 0, "Perso", 11)
    del index[3]
    assert [entry.uid for entry in index] == [5, 9, 12] and index.position(12) == 2
    assert index.first_without(Flag.SEEN) == 2
    with pytest.raises(ValueError):
        index[10] = IndexEntry(10, 100, 0, "", 12)  # UIDs only grow
    with pytest.raises(KeyError):
        del index[3]
