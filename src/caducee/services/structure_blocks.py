"""The IMAP structures of large folders, kept compressed in blocks (issue 17).

A full sync (``UID FETCH 1:* (... ENVELOPE BODYSTRUCTURE)``) of a folder larger than the
per-message structure cache (``mailstore.StructureCache``) used to read and decrypt every
message's structure again on each sync: at 100,000 messages the warm sync cost twice as much
per message as at 10,000. Here the structures of such a folder are kept in memory as blocks of
:data:`BLOCK_SIZE` messages of consecutive UIDs, each block compressed with zlib: the
structures of one folder repeat themselves (the same correspondents, parts, parameters), so a
block is a fraction of the ~1 kB a message takes uncompressed.

A structure never changes for a UID of a folder (UIDs are never reused while UIDVALIDITY holds,
RFC 3501 §2.3.1.1), so a block stays true for as long as its folder keeps its UIDVALIDITY;
expunged messages are simply never asked for again. Blocks are immutable and a folder's set of
blocks is replaced, not changed, when blocks are added: a worker thread reading a snapshot
never sees it move. In memory only, like every cache of decrypted content; bounded in bytes,
least recently used folder first out.
"""

from __future__ import annotations

import bisect
import zlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from caducee.app import App
from caducee.services.bounded_cache import BoundedCache

#: Messages compressed together.
BLOCK_SIZE = 64
#: Per node, every folder's blocks (about 15 MB for a 100,000-message folder of the shared
#: corpus; real mail compresses less).
BLOCKS_CACHE_BYTES = 48 * 1024 * 1024
#: zlib's fastest level: about as small as level 6 on these texts, twice as fast to write.
_LEVEL = 1
#: What a block costs beyond its compressed bytes (its arrays and objects).
_BLOCK_OVERHEAD = 200


@dataclass(frozen=True)
class Block:
    """The structures of up to :data:`BLOCK_SIZE` messages of one folder: their UIDs
    (ascending), where each one's bytes end in the uncompressed data, and that data
    compressed."""

    uids: array[int]
    ends: array[int]
    packed: bytes

    @classmethod
    def build(cls, items: list[tuple[int, bytes]]) -> Block:
        """From (uid, compact structure) pairs in ascending UID order (CPU work: a worker
        thread's)."""
        ends = array("I")
        offset = 0
        for _, compact in items:
            offset += len(compact)
            ends.append(offset)
        data = b"".join(compact for _, compact in items)
        return cls(array("Q", [uid for uid, _ in items]), ends, zlib.compress(data, _LEVEL))

    @property
    def nbytes(self) -> int:
        return len(self.packed) + self.uids.itemsize * len(self.uids) * 2 + _BLOCK_OVERHEAD


@dataclass(frozen=True)
class FolderBlocks:
    """A folder's blocks, ordered by first UID, for one UIDVALIDITY (immutable: adding blocks
    makes a new one)."""

    uidvalidity: int
    firsts: tuple[int, ...]
    blocks: tuple[Block, ...]
    nbytes: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbytes", sum(block.nbytes for block in self.blocks))

    def find(self, uids: Iterable[int]) -> dict[int, bytes]:
        """The compact structures held for ``uids`` (CPU work: a worker thread's). Each block
        is decompressed once per call however many of its messages are asked for."""
        out: dict[int, bytes] = {}
        opened: dict[int, bytes] = {}
        firsts, blocks = self.firsts, self.blocks
        for uid in uids:
            at = bisect.bisect_right(firsts, uid) - 1
            if at < 0:
                continue
            block = blocks[at]
            index = bisect.bisect_left(block.uids, uid)
            if index == len(block.uids) or block.uids[index] != uid:
                continue
            data = opened.get(at)
            if data is None:
                data = opened[at] = zlib.decompress(block.packed)
            start = block.ends[index - 1] if index else 0
            out[uid] = data[start : block.ends[index]]
        return out

    def adding(self, new: list[Block]) -> FolderBlocks:
        """These blocks and ``new`` (a new block whose first UID another already holds is
        left out: two sessions read the same messages at once)."""
        merged = dict(zip(self.firsts, self.blocks, strict=True))
        for block in new:
            first = block.uids[0]
            at = bisect.bisect_right(self.firsts, first) - 1
            if at >= 0 and first <= self.blocks[at].uids[-1]:
                continue
            merged.setdefault(first, block)
        firsts = tuple(sorted(merged))
        return FolderBlocks(self.uidvalidity, firsts, tuple(merged[f] for f in firsts))


def build_blocks(structures: Mapping[int, bytes]) -> list[Block]:
    """Blocks of :data:`BLOCK_SIZE` messages from compact structures by UID (CPU work: a
    worker thread's)."""
    ordered = sorted(structures.items())
    return [
        Block.build(ordered[start : start + BLOCK_SIZE])
        for start in range(0, len(ordered), BLOCK_SIZE)
    ]


class StructureBlocks(BoundedCache[int, FolderBlocks]):
    """Per node: :class:`FolderBlocks` by folder id."""

    def __init__(self, _app: App) -> None:
        super().__init__("structure-blocks", lambda found: found.nbytes, BLOCKS_CACHE_BYTES)

    def of(self, folder_id: int, uidvalidity: int) -> FolderBlocks:
        """The folder's blocks (none yet: an empty set)."""
        found = self.get(folder_id)
        if found is None or found.uidvalidity != uidvalidity:
            return FolderBlocks(uidvalidity, (), ())
        return found

    def add(self, folder_id: int, uidvalidity: int, new: list[Block]) -> None:
        if not new:
            return
        found = self.of(folder_id, uidvalidity)
        grown = found.adding(new)
        if grown.nbytes > BLOCKS_CACHE_BYTES:  # one folder larger than the whole cache
            return
        self.put(folder_id, grown)


def structure_blocks(app: App) -> StructureBlocks:
    return app.component(StructureBlocks, StructureBlocks)
