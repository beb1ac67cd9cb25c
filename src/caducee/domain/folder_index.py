"""A folder's messages as an IMAP session knows them, kept compactly (issue 17).

The sequence map of RFC 3501 §2.3.1.2 (message sequence number = position in UID order) with
each message's id, flags, keywords and MODSEQ, in parallel typed arrays: about 28 bytes a
message instead of a Python object, a dict entry and a list slot (~200 bytes). A session of a
100,000-message folder holds 2.8 MB; a copy of a cached index is a few ``memcpy``.

It reads and writes like the ``dict[uid, IndexEntry]`` it replaces: entries are built on
access, updates go back into the arrays. New UIDs are always larger than the last one (UIDs
only grow, RFC 3501 §2.3.1.1), so appending keeps the UID order.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterator, Sequence

from caducee.domain.model import IndexEntry


class FolderIndex:
    """UIDs in ascending order (sequence numbers are positions + 1) and each message's state."""

    __slots__ = ("_flags", "_ids", "_keywords", "_modseqs", "uids")

    def __init__(self, entries: Sequence[tuple[int, int, int, str, int]] = ()) -> None:
        """``entries``: (uid, id, flags, keywords, modseq) in ascending UID order."""
        self.uids = array("Q", [e[0] for e in entries])
        self._ids = array("Q", [e[1] for e in entries])
        self._flags = array("Q", [e[2] for e in entries])
        self._modseqs = array("Q", [e[4] for e in entries])
        # only messages with keywords: most have none
        self._keywords: dict[int, str] = {e[0]: e[3] for e in entries if e[3]}

    def copy(self) -> FolderIndex:
        other = FolderIndex()
        other.uids = array("Q", self.uids)
        other._ids = array("Q", self._ids)
        other._flags = array("Q", self._flags)
        other._modseqs = array("Q", self._modseqs)
        other._keywords = dict(self._keywords)
        return other

    @property
    def nbytes(self) -> int:
        """About what it holds in memory."""
        arrays = (self.uids, self._ids, self._flags, self._modseqs)
        return sum(a.itemsize * len(a) for a in arrays) + 100 * len(self._keywords)

    def __len__(self) -> int:
        return len(self.uids)

    def position(self, uid: int) -> int:
        """Index of ``uid`` in the arrays, -1 if absent."""
        index = bisect.bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index
        return -1

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.position(uid) >= 0

    @property
    def message_ids(self) -> Sequence[int]:
        """Message ids in sequence-number order (read only)."""
        return self._ids

    def at(self, index: int) -> IndexEntry:
        uid = self.uids[index]
        return IndexEntry(
            uid,
            self._ids[index],
            self._flags[index],
            self._keywords.get(uid, ""),
            self._modseqs[index],
        )

    def modseq_at(self, index: int) -> int:
        return self._modseqs[index]

    def refresh_at(self, index: int, flags: int, keywords: str, modseq: int) -> None:
        """Set the state of the message at ``index`` (its UID and id unchanged): no search
        by UID, no entry built (once per message in a full sync)."""
        self._flags[index] = flags
        self._modseqs[index] = modseq
        uid = self.uids[index]
        if keywords:
            self._keywords[uid] = keywords
        elif self._keywords:
            self._keywords.pop(uid, None)

    def __getitem__(self, uid: int) -> IndexEntry:
        index = self.position(uid)
        if index < 0:
            raise KeyError(uid)
        return self.at(index)

    def get(self, uid: int) -> IndexEntry | None:
        index = self.position(uid)
        return self.at(index) if index >= 0 else None

    def __setitem__(self, uid: int, entry: IndexEntry) -> None:
        """Update a message's state, or add a message whose UID is larger than any here."""
        index = self.position(uid)
        if index < 0:
            if self.uids and uid < self.uids[-1]:
                raise ValueError(f"UID {uid} below the last one: UIDs only grow")
            self.uids.append(uid)
            self._ids.append(entry.id)
            self._flags.append(entry.flags)
            self._modseqs.append(entry.modseq)
        else:
            self._ids[index] = entry.id
            self._flags[index] = entry.flags
            self._modseqs[index] = entry.modseq
        if entry.keywords:
            self._keywords[uid] = entry.keywords
        else:
            self._keywords.pop(uid, None)

    def __delitem__(self, uid: int) -> None:
        index = self.position(uid)
        if index < 0:
            raise KeyError(uid)
        for column in (self.uids, self._ids, self._flags, self._modseqs):
            del column[index]
        self._keywords.pop(uid, None)

    def __iter__(self) -> Iterator[IndexEntry]:
        return (self.at(index) for index in range(len(self.uids)))

    def first_without(self, flag: int) -> int:
        """Sequence number of the first message without ``flag`` (0: none)."""
        for index, flags in enumerate(self._flags):
            if not flags & flag:
                return index + 1
        return 0

    def keywords(self) -> set[str]:
        """Every keyword set on a message here."""
        return {word for text in self._keywords.values() for word in text.split()}
