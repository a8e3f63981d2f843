# cython: boundscheck=False, initializedcheck=False
"""Boost.Interprocess's ``simple_seq_fit`` (64-bit): one address-ordered free list, first fit.

Every block starts with a 16-byte header holding its size and, while free, the offset of the
next free block. The free list is kept in address order, so a free walk that stops at the
freed block knows both of its free neighbours and coalesces in one pass, exactly as Boost does.
Allocation scans the list from the start and takes the first block that fits, splitting off the
front. The price is a walk per operation that grows with the number of free blocks: this is the
simplest and, on fragmented heaps, slowest of the algorithms, kept as Boost's baseline.

Reading order (tlsf.c's): constants, in-buffer layout, the block and free-list helpers, the
public operations chaining them, region size, checks and introspection, plugin registration.

One source, two builds: Cython compiles this module in its pure-Python mode (the C types come
from the annotations and ``sequential_fit.pxd``; the helpers become C functions the compiler
inlines); with ``SEGALLOC_PURE_PYTHON=1`` the same code runs interpreted. Words are read
through the signed view (``Words.signed``) and written through ``Words.store``. A hostile word
reads below 2**63 (negative if above), and every comparison of a stored size subtracts two
checked offsets instead of adding to one, so C arithmetic never wraps around.

Compiled, word reads are not bounds-checked one by one (the directive above): each is proven in
bounds by a check on its path instead, which the helpers' docstrings state. ``__init__`` checks
the header fits the buffer, whose words ``words`` views; ``region_end``, read first by every
operation, returns an end within the buffer; every block offset is checked against that end
before its header is read (``first_fit`` and ``free_before`` stop a walk at it, ``check_free``
and ``block_of`` refuse what lies past it), and a link copied into a header is checked not
negative (``next_free``). So the hot paths raise nothing but ``SegmentCorrupt`` /
``InvalidPointer`` on damage, by construction, and need no ``try`` to translate an
``IndexError`` or a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import cython

from segalloc.algorithm_common import (
    ALLOCATE_NEW,
    DAMAGE,
    EXPAND,
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
from segalloc.interfaces import Command, MemoryAlgorithm, compiled_hookimpl
from segalloc.kernel import NO_MEMORY, AlgorithmKernel
from segalloc.words import Words

__all__ = ["SequentialFit"]

# ------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------

# Compiled, the small layout constants (here and in the layout below) are C constants of
# ``sequential_fit.pxd`` with the same values, which the compiler folds into the instructions;
# the differential test compares the bytes both builds write.
if not cython.compiled:
    #: fixed: a unit is one block header; every block size and block offset is a multiple of it
    UNIT = 16
    #: fixed: the header every block carries (Boost's block_ctrl: size + next, 8 bytes each)
    BLOCK_HEADER = UNIT
    #: fixed: an allocation splits a free block only when the rest is more than a bare header
    #: (Boost's ``m_size > nunits + BlockCtrlUnits``); a shrink may give back a bare header
    SPLIT_MIN_REST = 2 * UNIT
    #: fixed: terminates the free list; no block lives at offset 0 (the header is there)
    END_OF_LIST = 0
#: fixed: the allocation mark of a first format; each re-format of the same bytes steps it
#: (``_next_mark``), so headers left over from an earlier life never pass for live ones
FIRST_MARK = 0xA110CA7ED
#: requests beyond this cannot be served by any region (and keep the arithmetic in 63 bits)
MAX_REQUEST = 1 << 60

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
#            | MARK       odd, below 2**63; live block     |  word HDR_MARK
#            |            ``blk`` holds MARK ^ blk in NEXT |
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

if not cython.compiled:  # compiled, C constants of sequential_fit.pxd (see Constants)
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

#: the layout constants as Python values, for tests and inspection tools (compiled, the module's
#: constants are C values, not module attributes)
LAYOUT = SimpleNamespace(UNIT=UNIT, BLOCK_HEADER=BLOCK_HEADER, HEADER_SIZE=HEADER_SIZE,
                         HDR_MARK=HDR_MARK, BLK_SIZE=BLK_SIZE, BLK_NEXT=BLK_NEXT)


def _round_up(value: int, unit: int) -> int:
    return (value + unit - 1) & -unit


def _next_mark(mark: int) -> int:
    """The mark of the next format of the same bytes: one 64-bit LCG step, kept odd and below
    2**63 (no word an algorithm stores reaches 2**63, so a hostile one reads negative)."""
    return ((mark * 6364136223846793005 + 1442695040888963407) & (2**63 - 1)) | 1


def block_for(size: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """The block size serving ``size`` payload bytes (0 <= size <= MAX_REQUEST): the header
    added, rounded up to UNIT."""
    return (size + BLOCK_HEADER + UNIT - 1) & -UNIT


def requested(size: object) -> cython.Py_ssize_t:
    """A request size as a C value, MAX_REQUEST + 1 standing for every larger one (no region
    holds it); ``ValueError`` if negative."""
    request: cython.Py_ssize_t
    try:
        request = size
    except OverflowError:  # compiled only: beyond 63 bits
        request = -1 if size < 0 else MAX_REQUEST + 1  # type: ignore[operator]
    if request < 0:
        raise ValueError(f"sequential_fit: size {size} must be non-negative")
    return request if request <= MAX_REQUEST else MAX_REQUEST + 1


@cython.cclass
class _Core(AlgorithmKernel):
    """The block helpers and operations over the region's words (a C type when compiled).

    Fields are where the header and the first block lie, fixed by ``start``; every state word
    is read from ``words`` on each call."""

    def __init__(self, buf: memoryview, start: int) -> None:
        """Bind the views; use ``format`` or ``attach``, which check the region first."""
        byte_view = memoryview(buf).cast("B")
        self._buf = byte_view
        self.buffer_size = len(byte_view)
        # every metadata write goes through ``words`` (a shared segment swaps in a journaling
        # view of the same memory), so methods fetch it from ``self`` on each call
        self.words = Words(byte_view)
        self._start = start
        base = _round_up(start, UNIT)
        if start < 0 or base + HEADER_SIZE > self.buffer_size:
            raise SegmentCorrupt(f"sequential_fit: no room for a header at start={start}")
        self.control = base >> 3
        self.first = base + HEADER_SIZE

    # -- blocks (a block's words: ``r[(blk >> 3) + BLK_SIZE]``, ``r[(blk >> 3) + BLK_NEXT]``) --
    def set_block(self, blk: cython.Py_ssize_t, size: cython.Py_ssize_t,
                  next_free: cython.Py_ssize_t) -> cython.int:
        """Write free block ``blk``'s header."""
        self.words.put((blk >> 3) + BLK_SIZE, size)
        self.words.put((blk >> 3) + BLK_NEXT, next_free)
        return 0

    def split(self, blk: cython.Py_ssize_t, size: cython.Py_ssize_t, need: cython.Py_ssize_t,
              after: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Cut free block ``blk`` of ``size`` bytes, linked to ``after`` (``next_free``), after
        ``need`` bytes: the rest, returned, is a free block taking ``blk``'s place in the list
        order (the link to it still to set)."""
        rest: cython.Py_ssize_t = blk + need
        self.set_block(rest, size - need, after)
        self.words.put((blk >> 3) + BLK_SIZE, need)
        return rest

    def next_free(self, blk: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The link in free block ``blk``'s header (checked by the caller to lie within the
        region); ``SegmentCorrupt`` if negative, which no offset is."""
        link: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_NEXT]
        if link < 0:
            raise SegmentCorrupt(f"sequential_fit: free block {blk} links to {link}")
        return link

    def add_allocated(self, delta: cython.Py_ssize_t) -> cython.int:
        """Add ``delta`` to the allocated byte count, which must stay within the buffer."""
        word: cython.Py_ssize_t = self.control + HDR_ALLOCATED
        count: cython.Py_ssize_t = self.words.signed[word]
        if 0 <= count <= self.buffer_size:
            count += delta
        if not 0 <= count <= self.buffer_size:
            raise SegmentCorrupt(f"sequential_fit: the allocated byte count "
                                 f"{self.words.signed[word]} is damaged")
        self.words.put(word, count)
        return 0

    # -- the region ------------------------------------------------------------------------
    def region_end(self) -> cython.Py_ssize_t:
        """Where the region ends (bytes): ``SegmentCorrupt`` unless it holds the header and
        a block and fits the buffer. ``words`` views the whole buffer (the interface's rule;
        ``__init__`` checked the header fits it), so a block ending there has its header words
        in bounds."""
        size: cython.Py_ssize_t = self.words.signed[self.control + HDR_SIZE]
        if size < self.first + UNIT - self._start or size > self.buffer_size - self._start:
            raise SegmentCorrupt(f"sequential_fit: region size {size} does not fit the buffer")
        return self._start + size

    def blocks_end(self, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Where the block chain ends for a region ending at ``end``."""
        return end - ((end - self.first) & (UNIT - 1))

    def _is_block_start(self, blk: int, blocks_end: int) -> bool:
        return self.first <= blk < blocks_end and (blk - self.first) % UNIT == 0

    # -- the free list ---------------------------------------------------------------------
    def link_after(self, prev: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Word index of the link that follows free block ``prev`` (0: the list head)."""
        return (prev >> 3) + BLK_NEXT if prev else self.control + HDR_FREE_HEAD

    def free_before(self, blk: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The last free block below ``blk`` (0 if none), walking the list up to it; the link
        after it leads to the first free block at or above ``blk`` (0 if none).

        Strict address order bounds the walk (each step reads a word further on) and exposes
        cycles; the walk reads only blocks whose header ends within the region ending at
        ``end``, and an entry below ``blk`` past that is damage."""
        stop: cython.Py_ssize_t = min(blk, end - UNIT + 1)
        prev: cython.Py_ssize_t = 0
        nxt: cython.Py_ssize_t = self.words.signed[self.control + HDR_FREE_HEAD]
        while prev < nxt < stop:
            prev = nxt
            nxt = self.words.signed[(nxt >> 3) + BLK_NEXT]
        if nxt != END_OF_LIST and (nxt <= prev or nxt < blk):
            raise SegmentCorrupt(f"sequential_fit: free list not in address order after {prev}")
        return prev

    def first_fit(self, need: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The free block before the first one of at least ``need`` bytes (0: the head
        fits) in the region ending at ``end``; -1 when none fits."""
        last: cython.Py_ssize_t = end - UNIT  # the walk reads headers within the region only
        prev: cython.Py_ssize_t = 0
        blk: cython.Py_ssize_t = self.words.signed[self.control + HDR_FREE_HEAD]
        while prev < blk <= last:
            if self.words.signed[(blk >> 3) + BLK_SIZE] >= need:
                self.check_free(blk, end)
                return prev
            prev = blk
            blk = self.words.signed[(blk >> 3) + BLK_NEXT]
        if blk != END_OF_LIST:
            raise SegmentCorrupt(f"sequential_fit: free list out of order or past the region "
                                 f"after {prev}")
        return -1

    def largest_free(self, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The free block before the largest one (0: the head; the lowest of equals) in the
        region ending at ``end``; -1 when the list is empty."""
        prev: cython.Py_ssize_t = 0
        best: cython.Py_ssize_t = -1
        best_size: cython.Py_ssize_t = 0
        last: cython.Py_ssize_t = end - UNIT  # as in first_fit
        blk: cython.Py_ssize_t = self.words.signed[self.control + HDR_FREE_HEAD]
        while prev < blk <= last:
            size: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_SIZE]
            if size > best_size:
                best, best_size = prev, size
            prev = blk
            blk = self.words.signed[(blk >> 3) + BLK_NEXT]
        if blk != END_OF_LIST:
            raise SegmentCorrupt(f"sequential_fit: free list out of order or past the region "
                                 f"after {prev}")
        if best >= 0:
            self.check_free(self.words.signed[self.link_after(best)], end)
        return best

    def check_free(self, blk: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The size of free block ``blk``, reached through the list; ``SegmentCorrupt`` unless
        it is a whole block inside the region ending at ``end`` (``region_end``, read once by
        the operation); the place is checked before the size is read."""
        if blk < self.first or blk > end - UNIT or blk & (UNIT - 1):
            raise SegmentCorrupt(f"sequential_fit: free block {blk} lies outside the blocks")
        size: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_SIZE]
        if size < UNIT or size > end - blk or size & (UNIT - 1):
            raise SegmentCorrupt(f"sequential_fit: free block {blk} (size {size}) is damaged")
        return size

    def offset_of(self, offset: object) -> cython.Py_ssize_t:
        """A caller's ``offset`` as a C offset; ``InvalidPointer`` when it cannot be one."""
        if type(offset) is not int:
            raise InvalidPointer(f"sequential_fit: offset must be an int, not {offset!r}")
        if not 0 <= offset <= MAX_REQUEST:
            raise InvalidPointer(f"sequential_fit: {offset} is not a block offset of the region")
        return offset

    def block_of(self, offset: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The block of allocation ``offset`` if it can be one (live or not: ``live_prev``
        tells) in the region ending at ``end`` (read first: a damaged size reads as such);
        ``InvalidPointer`` otherwise."""
        if offset < self.first + BLOCK_HEADER or offset > end or (offset - self.first) & (UNIT - 1):
            raise InvalidPointer(f"sequential_fit: {offset} is not a block offset of the region")
        return offset - BLOCK_HEADER

    def live_prev(self, blk: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Check ``blk`` is a live block of the region ending at ``end``; the free block before
        it (0 if none).

        The header must carry this block's mark (see the layout comment), and the free-list
        walk must place the block between two free blocks without touching either. All checks
        come before any write, so a bad offset changes nothing.
        """
        prev: cython.Py_ssize_t = self.free_before(blk, end)
        nxt: cython.Py_ssize_t = self.words.signed[self.link_after(prev)]
        if nxt == blk:
            raise InvalidPointer(f"sequential_fit: {blk + BLOCK_HEADER} is already free")
        if prev and self.words.signed[(prev >> 3) + BLK_SIZE] > blk - prev:
            raise InvalidPointer(f"sequential_fit: {blk + BLOCK_HEADER} lies inside free block {prev}")
        if self.words.signed[(blk >> 3) + BLK_NEXT] != self.words.signed[self.control + HDR_MARK] ^ blk:
            raise InvalidPointer(f"sequential_fit: {blk + BLOCK_HEADER} is not the start of a live block")
        size: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_SIZE]
        limit: cython.Py_ssize_t = nxt if nxt != END_OF_LIST else end
        if size < UNIT or size & (UNIT - 1) or size > limit - blk:
            raise SegmentCorrupt(f"sequential_fit: live block {blk} has a bad size {size}")
        return prev

    def take(self, prev: cython.Py_ssize_t, need: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Allocate ``need`` bytes from the front of the free block after ``prev``, splitting
        off the rest when it is worth a block; returns the payload offset. The block's NEXT
        word takes its mark (see the layout comment). That block is one the caller checked
        (``check_free`` or ``walk_free``): its header lies within the region. Every check
        comes before the first write."""
        link: cython.Py_ssize_t = self.link_after(prev)
        blk: cython.Py_ssize_t = self.words.signed[link]
        size: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_SIZE]
        after: cython.Py_ssize_t = self.next_free(blk)
        mark: cython.Py_ssize_t = self.words.signed[self.control + HDR_MARK]
        if mark < 0:  # a region formatted again by an older segalloc: marks took 64 bits
            raise SegmentCorrupt("sequential_fit: the allocation mark does not fit 63 bits")
        splits: cython.bint = size - need >= SPLIT_MIN_REST
        self.add_allocated(need if splits else size)
        self.words.put(link, self.split(blk, size, need, after) if splits else after)
        self.words.put((blk >> 3) + BLK_NEXT, mark ^ blk)
        return blk + BLOCK_HEADER

    def release(self, blk: cython.Py_ssize_t, size: cython.Py_ssize_t,
                prev: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.int:
        """Put block ``blk`` of ``size`` bytes on the free list after ``prev``, merging it
        with its free neighbours when they touch (merge_next, then merge_prev); the region
        ends at ``end``."""
        link: cython.Py_ssize_t = self.link_after(prev)
        nxt: cython.Py_ssize_t = self.words.signed[link]
        if nxt and blk + size == nxt:
            size += self.check_free(nxt, end)
            nxt = self.next_free(nxt)
        if prev and self.words.signed[(prev >> 3) + BLK_SIZE] == blk - prev:
            self.set_block(prev, blk - prev + size, nxt)
            self.words.put((blk >> 3) + BLK_NEXT, 0)  # no mark may outlive its block
        else:
            self.set_block(blk, size, nxt)
            self.words.put(link, blk)
        return 0

    # -- the allocation interface ----------------------------------------------------------
    # The kernel_* methods are the C entry points (segalloc.kernel) of the hot paths; the
    # MemoryAlgorithm methods check the Python arguments and call them.
    def kernel_allocate(self, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """First fit: the lowest free block with room for ``size`` bytes and a header."""
        need: cython.Py_ssize_t = block_for(size)
        prev: cython.Py_ssize_t = self.first_fit(need, self.region_end())
        if prev < 0:
            return NO_MEMORY
        return self.take(prev, need)

    def kernel_deallocate(self, offset: cython.Py_ssize_t) -> cython.int:
        """Free a live block, merging it with free neighbours; ``InvalidPointer`` otherwise."""
        end: cython.Py_ssize_t = self.region_end()
        blk: cython.Py_ssize_t = self.block_of(offset, end)
        prev: cython.Py_ssize_t = self.live_prev(blk, end)
        size: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_SIZE]
        self.add_allocated(-size)
        self.release(blk, size, prev, end)
        return 0

    def allocate(self, size: int) -> int | None:
        """First fit: the lowest free block with room for ``size`` bytes and a header."""
        request: cython.Py_ssize_t = requested(size)
        if request > MAX_REQUEST:
            return None
        offset: cython.Py_ssize_t = self.kernel_allocate(request)
        return offset if offset >= 0 else None

    def deallocate(self, offset: object) -> None:  # not int: Cython would raise TypeError
        """Free a live block, merging it with free neighbours; ``InvalidPointer`` otherwise."""
        self.kernel_deallocate(self.offset_of(offset))

    @damage_is_corruption
    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        """First fit for an aligned payload; the unused front of the block stays free."""
        if alignment <= UNIT:
            return self.allocate(size)
        request: cython.Py_ssize_t = requested(size)
        if request > MAX_REQUEST:
            return None
        need: cython.Py_ssize_t = block_for(request)
        for prev, blk, free in self.walk_free():
            hdr = _round_up(blk + BLOCK_HEADER, alignment) - BLOCK_HEADER
            if hdr + need > blk + free:
                continue
            if hdr == blk:
                return self.take(prev, need)
            # the front (a whole number of units) stays a free block, just shorter
            self.words.put(self.link_after(blk), self.split(blk, free, hdr - blk,
                                                            self.next_free(blk)))
            return self.take(blk, need)
        return None

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        """Boost's command; ``received_size`` is always the block's usable size
        (``kernel_command`` does the work)."""
        flags: cython.Py_ssize_t = int(command)  # IntFlag operators cost a microsecond each
        if not command_can_succeed(flags, limit_size, preferred_size, reuse):
            return None, 0
        limit: cython.Py_ssize_t = requested(limit_size)
        preferred: cython.Py_ssize_t = requested(preferred_size)
        offset: cython.Py_ssize_t = self.kernel_command(
            flags, limit, preferred,
            -1 if reuse is None or not flags & (SHRINKS | EXPAND) else self.offset_of(reuse))
        if offset < 0:
            return None, 0
        return offset, self.words.signed[((offset - BLOCK_HEADER) >> 3) + BLK_SIZE] - BLOCK_HEADER

    def kernel_command(self, flags: cython.Py_ssize_t, limit_size: cython.Py_ssize_t,
                       preferred_size: cython.Py_ssize_t,
                       reuse: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Boost's command, its arguments checked by the caller (``command_can_succeed``;
        sizes at most MAX_REQUEST + 1): a shrink keeps ``[preferred, limit]``, an expansion
        grows forward only (backward expansion is not offered: EXPAND_BWD alone fails, once
        ``reuse`` is checked live), then ``ALLOCATE_NEW`` takes ``preferred`` from the first
        block that has it, else the largest block when that holds ``limit``. The block's
        offset, or ``NO_MEMORY``."""
        try:
            end: cython.Py_ssize_t = self.region_end()
            blk: cython.Py_ssize_t = -1 if reuse < 0 else self.block_of(reuse, end)
            if flags & SHRINKS:
                if self.shrink(blk, limit_size, preferred_size, end) or not flags & SHRINK_IN_PLACE:
                    return reuse
                return NO_MEMORY
            if blk >= 0:
                if not flags & EXPAND_FWD:
                    self.live_prev(blk, end)
                elif self.expand_fwd(blk, limit_size, preferred_size, flags, end):
                    return reuse
            if not flags & ALLOCATE_NEW:
                return NO_MEMORY
            offset: cython.Py_ssize_t = self.allocate_between(limit_size, preferred_size, end)
            if offset >= 0 and flags & ZERO_MEMORY:
                received: cython.Py_ssize_t = (
                    self.words.signed[((offset - BLOCK_HEADER) >> 3) + BLK_SIZE] - BLOCK_HEADER)
                self._buf[offset : offset + received] = bytes(received)
            return offset
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("sequential_fit", "allocation_command", exc) from exc

    def allocate_between(self, limit_size: cython.Py_ssize_t, preferred_size: cython.Py_ssize_t,
                         end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """First fit for ``preferred_size``, else the largest free block if it holds
        ``limit_size`` (taken whole, as Boost does); the offset, or ``NO_MEMORY``."""
        need: cython.Py_ssize_t = block_for(preferred_size)
        prev: cython.Py_ssize_t = self.first_fit(need, end)
        if prev < 0:
            prev = self.largest_free(end)
            if prev < 0:
                return NO_MEMORY
            need = self.words.signed[(self.words.signed[self.link_after(prev)] >> 3) + BLK_SIZE]
            if need - BLOCK_HEADER < limit_size:
                return NO_MEMORY
        return self.take(prev, need)

    def expand_fwd(self, blk: cython.Py_ssize_t, limit_size: cython.Py_ssize_t,
                   preferred_size: cython.Py_ssize_t, flags: cython.Py_ssize_t,
                   end: cython.Py_ssize_t) -> cython.bint:
        """Grow live block ``blk`` into a free successor; False if it cannot. As Boost's
        ``priv_expand``: a block already holding ``limit_size`` is left as it is."""
        prev: cython.Py_ssize_t = self.live_prev(blk, end)
        size: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_SIZE]
        least: cython.Py_ssize_t = block_for(limit_size) - BLOCK_HEADER
        if size - BLOCK_HEADER >= least:
            return True
        link: cython.Py_ssize_t = self.link_after(prev)
        nxt: cython.Py_ssize_t = self.words.signed[link]
        if nxt != blk + size:
            return False
        merged: cython.Py_ssize_t = size + self.check_free(nxt, end)
        if merged - BLOCK_HEADER < least:
            return False
        # the merged block takes the successor's place on the free list, then is allocated
        self.add_allocated(-size)
        self.set_block(blk, merged, self.next_free(nxt))
        self.words.put(link, blk)
        wanted: cython.Py_ssize_t = block_for(preferred_size)
        self.take(prev, wanted if wanted < merged else merged)
        if flags & ZERO_MEMORY:
            grown_end: cython.Py_ssize_t = blk + self.words.signed[(blk >> 3) + BLK_SIZE]
            self._buf[blk + size : grown_end] = bytes(grown_end - blk - size)
        return True

    def shrink(self, blk: cython.Py_ssize_t, limit_size: cython.Py_ssize_t,
               preferred_size: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.bint:
        """Shrink live block ``blk`` to ``preferred_size`` (rounded up) if that is within
        ``limit_size``; False if it cannot (Boost's ``shrink``)."""
        prev: cython.Py_ssize_t = self.live_prev(blk, end)
        size: cython.Py_ssize_t = self.words.signed[(blk >> 3) + BLK_SIZE]
        max_units: cython.Py_ssize_t = limit_size // UNIT
        keep_units: cython.Py_ssize_t = (preferred_size + UNIT - 1) // UNIT
        old_units: cython.Py_ssize_t = (size - BLOCK_HEADER) // UNIT
        if max_units < keep_units or old_units < keep_units:
            return False
        if old_units > keep_units:
            kept: cython.Py_ssize_t = BLOCK_HEADER + keep_units * UNIT
            self.add_allocated(kept - size)
            self.words.put((blk >> 3) + BLK_SIZE, kept)
            self.release(blk + kept, size - kept, prev, end)
        return True

    @damage_is_corruption
    def usable_size(self, offset: int) -> int:
        """Payload bytes of live block ``offset``: its size less the header."""
        checked: cython.Py_ssize_t = self.offset_of(offset)
        end: cython.Py_ssize_t = self.region_end()
        blk: cython.Py_ssize_t = self.block_of(checked, end)
        self.live_prev(blk, end)
        usable: int = self.words.signed[(blk >> 3) + BLK_SIZE] - BLOCK_HEADER
        return usable

    # -- region size -----------------------------------------------------------------------
    def grow(self, extra: int) -> None:
        """Take in ``extra`` bytes at the end; the new tail becomes (or extends) a free block."""
        end: cython.Py_ssize_t = self.region_end()
        check_grow(extra, end, self.buffer_size)
        old_end: cython.Py_ssize_t = self.blocks_end(end)
        new_end: cython.Py_ssize_t = self.blocks_end(end + extra)
        if new_end > old_end:
            self.release(old_end, new_end - old_end, self.free_before(old_end, end), end)
        self.words.put(self.control + HDR_SIZE, end + extra - self._start)

    @damage_is_corruption
    def shrink_to_fit(self) -> int:
        """Drop a free block at the end of the region (all but one unit when nothing is
        allocated); return the new region size. The caller trims the storage."""
        end: cython.Py_ssize_t = self.region_end()
        blocks_end: cython.Py_ssize_t = self.blocks_end(end)
        last: cython.Py_ssize_t = self.free_before(blocks_end, end)
        if not last or self.words.signed[(last >> 3) + BLK_SIZE] != blocks_end - last:
            return self.size
        new_end: cython.Py_ssize_t = last
        if last == self.first:
            # an empty region keeps one bare block, as Boost's keeps its "unique block"
            self.words.put((last >> 3) + BLK_SIZE, UNIT)
            new_end = last + UNIT
        else:
            self.words.put(self.link_after(self.free_before(last, end)), END_OF_LIST)
        self.words.put(self.control + HDR_SIZE, new_end - self._start)
        return new_end - self._start

    def _header_word(self, field: int) -> int:
        """Algorithm header word ``field``, for the cold paths that call no ``region_end``
        first (so this read is bounds-checked)."""
        with cython.boundscheck(True):
            value: int = self.words.signed[self.control + field]
        return value

    @property
    def size(self) -> int:
        """Region bytes from ``start``, the algorithm header included."""
        return self._header_word(HDR_SIZE)

    @property
    def free_memory(self) -> int:
        """Boost's ``get_free_memory``: the region less the header and the allocated blocks."""
        return self.size - (self.first - self._start) - self._header_word(HDR_ALLOCATED)

    # -- checks and introspection (cold paths) ---------------------------------------------
    def blocks(self) -> Iterator[tuple[int, int, bool]]:
        """``(block, size, is_free)`` along the physical chain, checked against the free list.

        Bounded: every step advances by at least one unit and stops at the chain's end.
        """
        r = self.words.signed
        blocks_end = self.blocks_end(self.region_end())
        pos = self.first
        free = r[self.control + HDR_FREE_HEAD]
        mark = r[self.control + HDR_MARK]
        prev_was_free = False
        while pos < blocks_end:
            size = r[(pos >> 3) + BLK_SIZE]
            if size < UNIT or size % UNIT or size > blocks_end - pos:
                raise SegmentCorrupt(f"sequential_fit: block {pos} has a bad size {size}")
            if free and free < pos:
                raise SegmentCorrupt(f"sequential_fit: free-list entry {free} is not a block")
            is_free = free == pos
            if is_free:
                if prev_was_free:
                    raise SegmentCorrupt(f"sequential_fit: free block {pos} was not coalesced")
                free = r[(pos >> 3) + BLK_NEXT]
                if free and free <= pos:
                    raise SegmentCorrupt(f"sequential_fit: free list not in address order after {pos}")
            elif r[(pos >> 3) + BLK_NEXT] != mark ^ pos:
                raise SegmentCorrupt(f"sequential_fit: block {pos} is neither free nor allocated")
            yield pos, size, is_free
            prev_was_free = is_free
            pos += size
        if free:
            raise SegmentCorrupt(f"sequential_fit: free-list entry {free} lies past the blocks")

    @damage_is_corruption
    def verify(self) -> None:
        """Walk the block chain and the free list together; they must agree, and the
        header's allocated count must match the allocated blocks."""
        allocated = sum(size for _, size, is_free in self.blocks() if not is_free)
        recorded = self._header_word(HDR_ALLOCATED)
        if allocated != recorded:
            raise SegmentCorrupt(
                f"sequential_fit: header counts {recorded} allocated bytes, blocks hold {allocated}"
            )

    def all_memory_deallocated(self) -> bool:
        return self._header_word(HDR_ALLOCATED) == 0

    def zero_free_memory(self) -> None:
        """Zero the payload of every free block (their headers are metadata)."""
        for blk, size in self.free_blocks():
            self._buf[blk + BLOCK_HEADER : blk + size] = bytes(size - BLOCK_HEADER)

    def walk_free(self) -> Iterator[tuple[int, int, int]]:
        """``(previous free block or 0, block, size)`` along the free list, each checked.

        Bounded: entries must rise strictly in address and stay inside the blocks.
        """
        r = self.words.signed
        blocks_end = self.blocks_end(self.region_end())
        prev = 0
        blk = r[self.control + HDR_FREE_HEAD]
        while blk:
            if blk <= prev or not self._is_block_start(blk, blocks_end):
                raise SegmentCorrupt(f"sequential_fit: bad free-list entry {blk} after {prev}")
            size = r[(blk >> 3) + BLK_SIZE]
            if size < UNIT or size % UNIT or size > blocks_end - blk:
                raise SegmentCorrupt(f"sequential_fit: free block {blk} has a bad size {size}")
            yield prev, blk, size
            prev = blk
            blk = r[(blk >> 3) + BLK_NEXT]

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(block offset, block size)`` of every free block, headers included, in address
        order; the sizes add up to ``free_memory`` less the tail slack."""
        for _, blk, size in self.walk_free():
            yield blk, size

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, usable_size)`` of every live block, in address order."""
        for blk, size, is_free in self.blocks():
            if not is_free:
                yield blk + BLOCK_HEADER, size - BLOCK_HEADER


class SequentialFit(_Core, MemoryAlgorithm):
    """First fit over one address-ordered free list, coalescing on free (``simple_seq_fit``)."""

    name = "sequential_fit"
    layout_version = LAYOUT_VERSION
    ALIGNMENT = UNIT
    PAYLOAD_PER_ALLOCATION = BLOCK_HEADER
    #: the header plus one bare block, for a UNIT-aligned start
    MIN_SEGMENT_SIZE = HEADER_SIZE + UNIT

    @classmethod
    def format(cls, buf: memoryview, start: int, size: int) -> SequentialFit:
        """Write an empty region: the header and one free block covering the rest."""
        # (any start: the header begins at start rounded up to UNIT, so the minimum depends on it)
        check_region(len(buf), start, size, alignment=1,
                     min_size=_round_up(start, UNIT) + HEADER_SIZE + UNIT - start)
        algo: _Core = cls(buf, start)
        first = algo.first
        blocks_end = algo.blocks_end(start + size)
        w, c = algo.words, algo.control
        earlier = w[c + HDR_MAGIC] == MAGIC
        w.put(c + HDR_MARK, _next_mark(w[c + HDR_MARK]) if earlier else FIRST_MARK)
        w.put(c + HDR_RESERVED, 0)
        w.put(c + HDR_MAGIC, MAGIC)
        w.put(c + HDR_SIZE, size)
        w.put(c + HDR_ALLOCATED, 0)
        w.put(c + HDR_FREE_HEAD, first)
        algo.set_block(first, blocks_end - first, END_OF_LIST)
        return algo  # type: ignore[return-value]

    @classmethod
    def attach(cls, buf: memoryview, start: int) -> SequentialFit:
        """Bind to a formatted region after checking its header is plausible."""
        if start < 0 or _round_up(start, UNIT) + HEADER_SIZE > len(buf):
            raise SegmentCorrupt(f"sequential_fit: no room for a header at start={start}")
        algo: _Core = cls(buf, start)
        r, c, first = algo.words.signed, algo.control, algo.first
        if r[c + HDR_MAGIC] != MAGIC:
            raise SegmentCorrupt("sequential_fit: bad magic (not a sequential_fit region)")
        blocks_end = algo.blocks_end(algo.region_end())
        if blocks_end - first < UNIT:
            raise SegmentCorrupt(f"sequential_fit: region size {r[c + HDR_SIZE]} does not fit the buffer")
        head = r[c + HDR_FREE_HEAD]
        if head != END_OF_LIST and not algo._is_block_start(head, blocks_end):
            raise SegmentCorrupt(f"sequential_fit: free-list head {head} is not a block offset")
        allocated = r[c + HDR_ALLOCATED]
        if allocated < 0 or allocated % UNIT or allocated > blocks_end - first:
            raise SegmentCorrupt(f"sequential_fit: allocated byte count {allocated} is absurd")
        if r[c + HDR_MARK] % 2 == 0:
            raise SegmentCorrupt("sequential_fit: the allocation mark is not odd")
        return algo  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------
# Plugin registration
# ------------------------------------------------------------------------------------------


@compiled_hookimpl
def segalloc_register_algorithms(register: Callable[[type[MemoryAlgorithm]], None]) -> None:
    """Register ``SequentialFit`` under the name ``sequential_fit``."""
    register(SequentialFit)
