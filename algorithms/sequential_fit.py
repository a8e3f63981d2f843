"""Boost.Interprocess's ``simple_seq_fit`` (64-bit): one address-ordered free list, first fit.

Every block starts with a 16-byte header holding its size and, while free, the offset of the
next free block. The free list is kept in address order, so a free walk that stops at the
freed block knows both of its free neighbours and coalesces in one pass, exactly as Boost does.
Allocation scans the list from the start and takes the first block that fits, splitting off the
front. The price is a walk per operation that grows with the number of free blocks: this is the
simplest and, on fragmented heaps, slowest of the algorithms, kept as Boost's baseline.

Sections, in reading order: constants, in-buffer layout, binding, free-list operations, public
allocation API, region size, checks and introspection, plugin registration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from segalloc.algorithm_common import (
    ALLOCATE_NEW,
    DAMAGE,
    EXPAND_BWD,
    EXPAND_FWD,
    SHRINK_IN_PLACE,
    SHRINKS,
    ZERO_MEMORY,
    check_grow,
    check_region,
    command_can_succeed,
    damage_is_corruption,
    damaged,
)
from segalloc.errors import InvalidPointer, SegallocError, SegmentCorrupt
from segalloc.interfaces import Command, MemoryAlgorithm, hookimpl
from segalloc.words import Words

__all__ = ["SequentialFit"]

# ------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------

#: fixed: a unit is one block header; every block size and block offset is a multiple of it
UNIT = 16
#: fixed: the header every block carries (Boost's block_ctrl: size + next, 8 bytes each)
BLOCK_HEADER = UNIT
#: fixed: an allocation splits a free block only when the rest is more than a bare header
#: (Boost's ``m_size > nunits + BlockCtrlUnits``); a shrink may give back a bare header
SPLIT_MIN_REST = 2 * UNIT
#: fixed: the allocation mark of a first format; each re-format of the same bytes steps it
#: (``_next_mark``), so headers left over from an earlier life never pass for live ones
FIRST_MARK = 0xA110CA7ED
#: fixed: terminates the free list; no block lives at offset 0 (the header is there)
END_OF_LIST = 0

assert BLOCK_HEADER == UNIT, "one unit must hold exactly one block header"
assert FIRST_MARK % 2 == 1, "marks are odd, so a marked word never equals a block offset"

# ------------------------------------------------------------------------------------------
# In-buffer layout (all offsets absolute in the buffer, i.e. relative to the segment start)
#
#  Algorithm header, at ``base`` = ``start`` rounded up to UNIT (48 bytes, 6 words):
#
#   base+0   +---------------------------------------------+
#            | MAGIC      identity + layout version        |  word HDR_MAGIC
#   base+8   +---------------------------------------------+
#            | SIZE       region bytes from ``start``      |  word HDR_SIZE
#   base+16  +---------------------------------------------+
#            | FREE_HEAD  offset of first free block or 0  |  word HDR_FREE_HEAD
#   base+24  +---------------------------------------------+
#            | ALLOCATED  sum of allocated block sizes     |  word HDR_ALLOCATED
#   base+32  +---------------------------------------------+
#            | MARK       odd; live block ``blk`` holds     |  word HDR_MARK
#            |            MARK ^ blk in its NEXT word      |
#   base+40  +---------------------------------------------+
#            | (reserved, 0: keeps the first block aligned)|
#   base+48  +---------------------------------------------+  = first block
#
#  Every block (16-byte header, UNIT-aligned, size a multiple of UNIT, header included):
#
#   blk+0    +---------------------------------------------+
#            | SIZE       block bytes, header included     |  word BLK_SIZE
#   blk+8    +---------------------------------------------+
#            | NEXT       free: next free block offset/0   |  word BLK_NEXT
#            |            allocated: MARK ^ blk            |
#   blk+16   +---------------------------------------------+  = the offset handed out
#            | payload ...                                 |
#
#  Blocks tile ``[first, blocks_end)`` with no gap; ``blocks_end`` is the region end rounded
#  down to UNIT. The slack between the two counts as free memory, as in Boost.
#
#  Why the mark is keyed by position and never left behind: ``deallocate`` must refuse any
#  offset that is not a live block without walking every block (that walk costs milliseconds
#  on a big heap). A header stops being live only by turning into a free header (its NEXT
#  becomes a link, which is even) or by being absorbed into a free block below it (its NEXT is
#  then cleared). So the only word in the region equal to ``MARK ^ blk`` at ``blk + 8`` is
#  a live header: a double free, a stale offset or a pointer into a block finds no mark,
#  unless the program itself wrote that exact value there. The free-list walk that every
#  free needs anyway refuses offsets inside free blocks, whatever their bytes.
# ------------------------------------------------------------------------------------------

HDR_MAGIC = 0
HDR_SIZE = 1
HDR_FREE_HEAD = 2
HDR_ALLOCATED = 3
HDR_MARK = 4
HDR_RESERVED = 5
HEADER_SIZE = 6 * 8
BLK_SIZE = 0
BLK_NEXT = 1

LAYOUT_VERSION = 1
MAGIC = int.from_bytes(b"seqfit" + LAYOUT_VERSION.to_bytes(2, "little"), "little")

assert HEADER_SIZE % UNIT == 0, "the first block must stay UNIT-aligned"


def _round_up(value: int, unit: int) -> int:
    return (value + unit - 1) & -unit


def _next_mark(mark: int) -> int:
    """The mark of the next format of the same bytes: one 64-bit LCG step, kept odd."""
    return ((mark * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)) | 1


class SequentialFit(MemoryAlgorithm):
    """First fit over one address-ordered free list, coalescing on free (``simple_seq_fit``)."""

    name = "sequential_fit"
    layout_version = LAYOUT_VERSION
    ALIGNMENT = UNIT
    PAYLOAD_PER_ALLOCATION = BLOCK_HEADER
    #: the header plus one bare block, for a UNIT-aligned start
    MIN_SEGMENT_SIZE = HEADER_SIZE + UNIT

    # -- binding ---------------------------------------------------------------------------
    def __init__(self, buf: memoryview, start: int) -> None:
        """Bind the views; use ``format`` or ``attach``, which check the region first."""
        self._buf = buf
        # every metadata write goes through ``words`` (a shared segment swaps in a journaling
        # view of the same memory), so methods fetch it from ``self`` on each call
        self.words = Words(buf)
        # read only: the same memory seen one word later, ``_nexts[blk >> 3]`` is block
        # ``blk``'s NEXT word; it spares the hot walks an addition per step
        self._nexts = buf[8 : 8 + ((len(buf) - 8) & -8)].cast("Q")
        self._start = start
        base = _round_up(start, UNIT)
        self._h = base >> 3
        self._first = base + HEADER_SIZE

    @classmethod
    def format(cls, buf: memoryview, start: int, size: int) -> SequentialFit:
        """Write an empty region: the header and one free block covering the rest."""
        # (any start: the header begins at start rounded up to UNIT, so the minimum depends on it)
        check_region(len(buf), start, size, alignment=1,
                     min_size=_round_up(start, UNIT) + HEADER_SIZE + UNIT - start)
        algo = cls(buf, start)
        first = algo._first
        blocks_end = algo._blocks_end(start + size)
        w, h = algo.words, algo._h
        earlier = w[h + HDR_MAGIC] == MAGIC
        w[h + HDR_MARK] = _next_mark(w[h + HDR_MARK]) if earlier else FIRST_MARK
        w[h + HDR_RESERVED] = 0
        w[h + HDR_MAGIC] = MAGIC
        w[h + HDR_SIZE] = size
        w[h + HDR_ALLOCATED] = 0
        w[h + HDR_FREE_HEAD] = first
        w[(first >> 3) + BLK_SIZE] = blocks_end - first
        w[(first >> 3) + BLK_NEXT] = END_OF_LIST
        return algo

    @classmethod
    def attach(cls, buf: memoryview, start: int) -> SequentialFit:
        """Bind to a formatted region after checking its header is plausible."""
        if start < 0 or _round_up(start, UNIT) + HEADER_SIZE > len(buf):
            raise SegmentCorrupt(f"sequential_fit: no room for a header at start={start}")
        algo = cls(buf, start)
        w, h, first = algo.words, algo._h, algo._first
        if w[h + HDR_MAGIC] != MAGIC:
            raise SegmentCorrupt("sequential_fit: bad magic (not a sequential_fit region)")
        size = w[h + HDR_SIZE]
        end = start + size
        if end > len(buf) or algo._blocks_end(end) - first < UNIT:
            raise SegmentCorrupt(f"sequential_fit: region size {size} does not fit the buffer")
        blocks_end = algo._blocks_end(end)
        head = w[h + HDR_FREE_HEAD]
        if head != END_OF_LIST and not algo._is_block_start(head, blocks_end):
            raise SegmentCorrupt(f"sequential_fit: free-list head {head} is not a block offset")
        allocated = w[h + HDR_ALLOCATED]
        if allocated % UNIT or allocated > blocks_end - first:
            raise SegmentCorrupt(f"sequential_fit: allocated byte count {allocated} is absurd")
        if w[h + HDR_MARK] % 2 == 0:
            raise SegmentCorrupt("sequential_fit: the allocation mark is not odd")
        return algo

    def _blocks_end(self, end: int) -> int:
        """Where the block chain ends for a region ending at ``end``."""
        return end - ((end - self._first) & (UNIT - 1))

    def _is_block_start(self, blk: int, blocks_end: int) -> bool:
        return self._first <= blk < blocks_end and (blk - self._first) % UNIT == 0

    def _region_end(self) -> int:
        return self._start + int(self.words[self._h + HDR_SIZE])

    # -- free-list operations --------------------------------------------------------------
    def _neighbours(self, blk: int) -> tuple[int, int, int]:
        """Walk the free list up to ``blk``: ``(link_word, prev_free, next_free)``.

        ``link_word`` is the word index of the NEXT field that points at ``next_free`` (the
        header's FREE_HEAD when no free block precedes ``blk``); ``prev_free`` is the last free
        block below ``blk`` (0 if none); ``next_free`` the first free block at or above it
        (0 if none). Strict address order bounds the walk and exposes cycles.
        """
        nexts = self._nexts
        prev = 0
        nxt = self.words[self._h + HDR_FREE_HEAD]
        # the hot loop: nxt < blk keeps every read inside the region
        while prev < nxt < blk:
            prev = nxt
            nxt = nexts[nxt >> 3]
        if nxt != END_OF_LIST and nxt <= prev:
            raise SegmentCorrupt(f"sequential_fit: free list not in address order after {prev}")
        return self._link_after(prev), prev, nxt

    def _link_after(self, prev: int) -> int:
        """Word index of the link that follows free block ``prev`` (0: the list head)."""
        return (prev >> 3) + BLK_NEXT if prev else self._h + HDR_FREE_HEAD

    def _live_block(self, offset: int) -> tuple[int, int, int, int, int]:
        """Check ``offset`` is a live block: ``(blk, size, link_word, prev_free, next_free)``.

        The header must carry this block's mark (see the layout comment), and the free-list
        walk must place the block between two free blocks without touching either.
        """
        if type(offset) is not int:
            raise InvalidPointer(f"sequential_fit: offset must be an int, not {offset!r}")
        w = self.words
        h = self._h
        first = self._first
        blk = offset - BLOCK_HEADER
        end = self._start + w[h + HDR_SIZE]
        if blk < first or offset > end or (blk - first) & (UNIT - 1):
            raise InvalidPointer(f"sequential_fit: {offset} is not a block offset of the region")
        link, prev, nxt = self._neighbours(blk)
        if nxt == blk:
            raise InvalidPointer(f"sequential_fit: {offset} is already free")
        if prev and prev + w[prev >> 3] > blk:
            raise InvalidPointer(f"sequential_fit: {offset} lies inside free block {prev}")
        i = blk >> 3
        if w[i + BLK_NEXT] != w[h + HDR_MARK] ^ blk:
            raise InvalidPointer(f"sequential_fit: {offset} is not the start of a live block")
        size = w[i + BLK_SIZE]
        if size < UNIT or size % UNIT or blk + size > (nxt or end):
            raise SegmentCorrupt(f"sequential_fit: live block {blk} has a bad size {size}")
        return blk, size, link, prev, nxt

    def _release(self, blk: int, size: int, link: int, prev: int, nxt: int) -> None:
        """Put block ``blk`` of ``size`` bytes on the free list between ``prev`` and ``nxt``,
        merging it with either when they touch (``link`` from ``_neighbours``)."""
        w = self.words
        if nxt and blk + size == nxt:
            size += w[(nxt >> 3) + BLK_SIZE]
            nxt = w[(nxt >> 3) + BLK_NEXT]
        if prev and prev + w[(prev >> 3) + BLK_SIZE] == blk:
            w[(prev >> 3) + BLK_SIZE] += size
            w[(prev >> 3) + BLK_NEXT] = nxt
            w[(blk >> 3) + BLK_NEXT] = 0  # no mark may outlive its block
        else:
            w[(blk >> 3) + BLK_SIZE] = size
            w[(blk >> 3) + BLK_NEXT] = nxt
            w[link] = blk

    def _take(self, link: int, blk: int, size: int, need: int) -> int:
        """Allocate ``need`` bytes from the front of free block ``blk`` (``link`` points at
        it), splitting off the rest when it is worth a block; returns the payload offset."""
        w = self.words
        i = blk >> 3
        if size - need >= SPLIT_MIN_REST:
            rest = blk + need
            w[(rest >> 3) + BLK_SIZE] = size - need
            w[(rest >> 3) + BLK_NEXT] = w[i + BLK_NEXT]
            w[link] = rest
            w[i + BLK_SIZE] = size = need
        else:
            w[link] = w[i + BLK_NEXT]
        w[i + BLK_NEXT] = w[self._h + HDR_MARK] ^ blk
        w[self._h + HDR_ALLOCATED] += size
        return blk + BLOCK_HEADER

    # -- allocation ------------------------------------------------------------------------
    def allocate(self, size: int) -> int | None:
        """First fit: the lowest free block with room for ``size`` bytes and a header."""
        need = (size + BLOCK_HEADER + UNIT - 1) & -UNIT
        w = self.words
        nexts = self._nexts
        blk = w[self._h + HDR_FREE_HEAD]
        low = 0
        try:
            # the hot loop
            while low < blk:
                free = w[blk >> 3]
                if free >= need:
                    break
                low = blk
                blk = nexts[blk >> 3]
            else:
                if blk != END_OF_LIST:
                    raise SegmentCorrupt(f"sequential_fit: free list not in address order after {low}")
                return None
        except IndexError:
            raise SegmentCorrupt(f"sequential_fit: free block {low} links outside the buffer") from None
        if blk < self._first or blk + free > self._start + w[self._h + HDR_SIZE] or (blk | free) % UNIT:
            raise SegmentCorrupt(f"sequential_fit: free block {blk} (size {free}) is damaged")
        return self._take(self._link_after(low), blk, free, need)

    def deallocate(self, offset: int) -> None:
        """Free a live block, merging it with free neighbours; ``InvalidPointer`` otherwise."""
        try:
            blk, size, link, prev, nxt = self._live_block(offset)
            self.words[self._h + HDR_ALLOCATED] -= size
            self._release(blk, size, link, prev, nxt)
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged(self.name, "deallocate", exc) from exc

    @damage_is_corruption
    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        """First fit for an aligned payload; the unused front of the block stays free."""
        if alignment <= UNIT:
            return self.allocate(size)
        need = _round_up(size + BLOCK_HEADER, UNIT)
        w = self.words
        for link, blk, free in self._walk_free():
            hdr = _round_up(blk + BLOCK_HEADER, alignment) - BLOCK_HEADER
            if hdr + need > blk + free:
                continue
            if hdr == blk:
                return self._take(link, blk, free, need)
            # the front (a whole number of units) stays a free block, just shorter
            w[(hdr >> 3) + BLK_SIZE] = blk + free - hdr
            w[(hdr >> 3) + BLK_NEXT] = w[(blk >> 3) + BLK_NEXT]
            w[(blk >> 3) + BLK_NEXT] = hdr
            w[(blk >> 3) + BLK_SIZE] = hdr - blk
            return self._take((blk >> 3) + BLK_NEXT, hdr, blk + free - hdr, need)
        return None

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        """Boost's command. Backward expansion is not offered: EXPAND_BWD alone gives
        ``(None, 0)``, and with ALLOCATE_NEW a new block is allocated."""
        flags = int(command)  # IntFlag operators cost a microsecond each
        if not command_can_succeed(flags, limit_size, preferred_size, reuse):
            return None, 0
        try:
            if flags & SHRINKS:
                assert reuse is not None
                received = self._shrink(reuse, limit_size, preferred_size)
                if received is not None:
                    return reuse, received
                if flags & SHRINK_IN_PLACE:
                    return None, 0
                return reuse, self.usable_size(reuse)
            if reuse is not None and flags & EXPAND_FWD:
                received = self._expand_fwd(reuse, limit_size, preferred_size, flags)
                if received is not None:
                    return reuse, received
            elif reuse is not None and flags & EXPAND_BWD:
                self._live_block(reuse)
            if not flags & ALLOCATE_NEW:
                return None, 0
            offset = self._allocate_between(limit_size, preferred_size)
            if offset is None:
                return None, 0
            received = self.usable_size(offset)
            if flags & ZERO_MEMORY:
                self._buf[offset : offset + received] = bytes(received)
            return offset, received
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged(self.name, "allocation_command", exc) from exc

    def _allocate_between(self, limit_size: int, preferred_size: int) -> int | None:
        """First fit for ``preferred_size``, else the biggest free block if it holds
        ``limit_size`` (taken whole, as Boost does)."""
        need = _round_up(preferred_size + BLOCK_HEADER, UNIT)
        biggest = (0, 0, 0)
        for link, blk, free in self._walk_free():
            if free >= need:
                return self._take(link, blk, free, need)
            if free > biggest[2]:
                biggest = (link, blk, free)
        link, blk, free = biggest
        if free - BLOCK_HEADER < limit_size:
            return None
        return self._take(link, blk, free, free)

    def _expand_fwd(self, offset: int, limit_size: int, preferred_size: int, flags: int) -> int | None:
        """Grow block ``offset`` into a free successor; the usable size, or None if it cannot.

        As Boost's ``priv_expand``: a block already holding ``limit_size`` is left as it is.
        """
        blk, size, link, _, nxt = self._live_block(offset)
        if size - BLOCK_HEADER >= _round_up(limit_size, UNIT):
            return size - BLOCK_HEADER
        if nxt != blk + size:
            return None
        w = self.words
        merged = size + w[(nxt >> 3) + BLK_SIZE]
        if merged - BLOCK_HEADER < _round_up(limit_size, UNIT):
            return None
        # the merged block takes the successor's place on the free list, then is allocated
        w[(blk >> 3) + BLK_NEXT] = w[(nxt >> 3) + BLK_NEXT]
        w[(blk >> 3) + BLK_SIZE] = merged
        w[link] = blk
        w[self._h + HDR_ALLOCATED] -= size
        self._take(link, blk, merged, min(_round_up(preferred_size + BLOCK_HEADER, UNIT), merged))
        received: int = w[(blk >> 3) + BLK_SIZE] - BLOCK_HEADER
        if flags & ZERO_MEMORY:
            self._buf[blk + size : offset + received] = bytes(offset + received - blk - size)
        return received

    def _shrink(self, offset: int, limit_size: int, preferred_size: int) -> int | None:
        """Shrink block ``offset`` to ``preferred_size`` (rounded up) if that is within
        ``limit_size``; the usable size, or None if it cannot (Boost's ``shrink``)."""
        blk, size, link, prev, nxt = self._live_block(offset)
        max_units = limit_size // UNIT
        keep_units = -(-preferred_size // UNIT)
        old_units = (size - BLOCK_HEADER) // UNIT
        if max_units < keep_units or old_units < keep_units:
            return None
        if old_units > keep_units:
            kept = BLOCK_HEADER + keep_units * UNIT
            w = self.words
            w[(blk >> 3) + BLK_SIZE] = kept
            w[self._h + HDR_ALLOCATED] -= size - kept
            self._release(blk + kept, size - kept, link, prev, nxt)
        return keep_units * UNIT

    def usable_size(self, offset: int) -> int:
        """Payload bytes of live block ``offset``: its size less the header."""
        return self._live_block(offset)[1] - BLOCK_HEADER

    # -- region size -----------------------------------------------------------------------
    def grow(self, extra: int) -> None:
        """Take in ``extra`` bytes at the end; the new tail becomes (or extends) a free block."""
        end = self._region_end()
        check_grow(extra, end, len(self._buf))
        old_end = self._blocks_end(end)
        new_end = self._blocks_end(end + extra)
        if new_end > old_end:
            self._release(old_end, new_end - old_end, *self._neighbours(old_end))
        self.words[self._h + HDR_SIZE] += extra

    def shrink_to_fit(self) -> int:
        """Drop a free block at the end of the region (all but one unit when nothing is
        allocated); return the new region size. The caller trims the storage."""
        w, h = self.words, self._h
        blocks_end = self._blocks_end(self._region_end())
        _, last, _ = self._neighbours(blocks_end)
        if not last or last + w[(last >> 3) + BLK_SIZE] != blocks_end:
            return int(w[h + HDR_SIZE])
        if last == self._first:
            # an empty region keeps one bare block, as Boost's keeps its "unique block"
            w[(last >> 3) + BLK_SIZE] = UNIT
            new_end = last + UNIT
        else:
            link, _, _ = self._neighbours(last)
            w[link] = END_OF_LIST
            new_end = last
        w[h + HDR_SIZE] = new_end - self._start
        return new_end - self._start

    @property
    def size(self) -> int:
        """Region bytes from ``start``, the algorithm header included."""
        return int(self.words[self._h + HDR_SIZE])

    @property
    def free_memory(self) -> int:
        """Boost's ``get_free_memory``: the region less the header and the allocated blocks."""
        return self.size - (self._first - self._start) - int(self.words[self._h + HDR_ALLOCATED])

    # -- checks and introspection ----------------------------------------------------------
    def _blocks(self) -> Iterator[tuple[int, int, bool]]:
        """``(block, size, is_free)`` along the physical chain, checked against the free list.

        Bounded: every step advances by at least one unit and stops at the chain's end.
        """
        w = self.words
        blocks_end = self._blocks_end(self._region_end())
        pos = self._first
        free = w[self._h + HDR_FREE_HEAD]
        mark = w[self._h + HDR_MARK]
        prev_was_free = False
        while pos < blocks_end:
            size = w[(pos >> 3) + BLK_SIZE]
            if size < UNIT or size % UNIT or pos + size > blocks_end:
                raise SegmentCorrupt(f"sequential_fit: block {pos} has a bad size {size}")
            if free and free < pos:
                raise SegmentCorrupt(f"sequential_fit: free-list entry {free} is not a block")
            is_free = free == pos
            if is_free:
                if prev_was_free:
                    raise SegmentCorrupt(f"sequential_fit: free block {pos} was not coalesced")
                free = w[(pos >> 3) + BLK_NEXT]
                if free and free <= pos:
                    raise SegmentCorrupt(f"sequential_fit: free list not in address order after {pos}")
            elif w[(pos >> 3) + BLK_NEXT] != mark ^ pos:
                raise SegmentCorrupt(f"sequential_fit: block {pos} is neither free nor allocated")
            yield pos, size, is_free
            prev_was_free = is_free
            pos += size
        if free:
            raise SegmentCorrupt(f"sequential_fit: free-list entry {free} lies past the blocks")

    def verify(self) -> None:
        """Walk the block chain and the free list together; they must agree, and the
        header's allocated count must match the allocated blocks."""
        allocated = sum(size for _, size, is_free in self._blocks() if not is_free)
        recorded = self.words[self._h + HDR_ALLOCATED]
        if allocated != recorded:
            raise SegmentCorrupt(
                f"sequential_fit: header counts {recorded} allocated bytes, blocks hold {allocated}"
            )

    def all_memory_deallocated(self) -> bool:
        return bool(self.words[self._h + HDR_ALLOCATED] == 0)

    def zero_free_memory(self) -> None:
        """Zero the payload of every free block (their headers are metadata)."""
        for blk, size in self.free_blocks():
            self._buf[blk + BLOCK_HEADER : blk + size] = bytes(size - BLOCK_HEADER)

    def _walk_free(self) -> Iterator[tuple[int, int, int]]:
        """``(link_word, block, size)`` along the free list, each entry checked.

        Bounded: entries must rise strictly in address and stay inside the blocks.
        """
        w = self.words
        blocks_end = self._blocks_end(self._region_end())
        link = self._h + HDR_FREE_HEAD
        blk = w[link]
        low = 0
        while blk:
            if blk <= low or not self._is_block_start(blk, blocks_end):
                raise SegmentCorrupt(f"sequential_fit: bad free-list entry {blk} after {low}")
            size = w[(blk >> 3) + BLK_SIZE]
            if size < UNIT or size % UNIT or blk + size > blocks_end:
                raise SegmentCorrupt(f"sequential_fit: free block {blk} has a bad size {size}")
            yield link, blk, size
            low = blk
            link = (blk >> 3) + BLK_NEXT
            blk = w[link]

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(block offset, block size)`` of every free block, headers included, in address
        order; the sizes add up to ``free_memory`` less the tail slack."""
        for _, blk, size in self._walk_free():
            yield blk, size

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, usable_size)`` of every live block, in address order."""
        for blk, size, is_free in self._blocks():
            if not is_free:
                yield blk + BLOCK_HEADER, size - BLOCK_HEADER


# ------------------------------------------------------------------------------------------
# Plugin registration
# ------------------------------------------------------------------------------------------


@hookimpl
def segalloc_register_algorithms(register: Callable[[type[MemoryAlgorithm]], None]) -> None:
    """Register ``SequentialFit`` under the name ``sequential_fit``."""
    register(SequentialFit)
