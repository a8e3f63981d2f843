"""Boost.Interprocess's default ``rbtree_best_fit`` (64-bit): boundary tags, best fit.

Allocation arithmetic is Boost's: a block is a multiple of 16 bytes, at least 48; its 16-byte
header (previous block's size, own size and flags) borrows its first word from the previous
block, so an allocation costs ``PAYLOAD_PER_ALLOCATION`` = 8 bytes beyond the request rounded
up (``allocate(100)`` takes a 112-byte block with 104 usable bytes). Boundary tags let a freed
block merge with both neighbours at once.

Boost finds the smallest fitting block in a red-black tree keyed by size. A tree walk costs too
many word reads in CPython, so the free blocks here are kept as dlmalloc keeps them: blocks
smaller than ``small_units * 16`` bytes sit in exact-size bins found through a two-level
bitmap, larger ones in bitwise tries (one per power of two) whose equal sizes hang in a list
off one node. Both give the smallest block that fits and, among equal sizes, the oldest
(Boost's multiset order), so the choices and the footprint follow Boost's. The free block that
ends the region (the "top") stays out of the tries when it is too large for a bin: it changes
size on nearly every allocation while the heap grows, so it is compared with the best trie
block instead, which keeps the choice best fit. Every allocation is taken from the front of the
block it splits.

The header is larger than Boost's (bins and trie roots: 192 bytes in a 64 KiB segment, 144 in
1000 bytes), so a new segment has that much less free memory than Boost's; the number of exact
bins grows with the region (one per 4 KiB, 8 to 1024), so small segments pay little.

Sections, in reading order: constants, in-buffer layout, binding, free structures, block
operations, public allocation API, region size, checks and introspection, registration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from segalloc.algorithm_common import (
    ALLOCATE_NEW,
    DAMAGE,
    EXPAND,
    EXPAND_BWD,
    EXPAND_FWD,
    SHRINKS,
    TRY_SHRINK_IN_PLACE,
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

__all__ = ["BestFit"]

# ------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------

#: fixed: Boost's Alignment; every block starts and every block size is a multiple of it
ALIGNMENT = 16
#: fixed: bytes of a word of the layout
WORD = 8
#: fixed: the header an allocated block carries (Boost's SizeHolder: prev size + size)
BLOCK_HEADER = 16
#: fixed: the previous block's last word, lent as a header word (Boost's UsableByPreviousChunk)
BORROWED = 8
#: fixed: what an allocation costs beyond the request rounded up
PAYLOAD_PER_ALLOCATION = BLOCK_HEADER - BORROWED
#: fixed: Boost's BlockCtrlBytes: the header plus the free-tree hook, rounded up to ALIGNMENT
MIN_BLOCK = 48
#: fixed: the end marker, a bare header that is always "allocated"
END_MARKER = 16
#: fixed: the largest request that still fits a minimum block
MIN_BLOCK_REQUEST = MIN_BLOCK - PAYLOAD_PER_ALLOCATION
#: tunable: exact-size bins a segment gets at most, and at least; a power of two each
MAX_SMALL_UNITS = 1024
MIN_SMALL_UNITS = 8
#: tunable: a segment gets one exact-size bin per this many region bytes (within the bounds)
REGION_BYTES_PER_SMALL_UNIT = 4096

#: flags in a block's SIZE_FLAGS word (sizes are multiples of 16: the low 4 bits are free)
ALLOCATED = 1
PREV_ALLOCATED = 2
BOTH_ALLOCATED = ALLOCATED | PREV_ALLOCATED
FLAGS = ALIGNMENT - 1

assert PAYLOAD_PER_ALLOCATION == 8 and MIN_BLOCK % ALIGNMENT == 0
assert FLAGS >= BOTH_ALLOCATED, "the flags must fit below the size's alignment"
assert MIN_SMALL_UNITS * ALIGNMENT >= 64, "trie nodes (5 link words) must fit the smallest one"

# ------------------------------------------------------------------------------------------
# In-buffer layout. Every link is a word index from the segment start (byte offset / 8);
# 0 means "none" (word 0 is the segment header, never a block).
#
#  Region header, at ``start`` (a multiple of 16), word offsets from it:
#
#   +0   MAGIC             identity + layout version                         H_MAGIC
#   +1   REGION_SIZE       region bytes from ``start``                       H_SIZE
#   +2   FREE_BYTES        sum of the free blocks' sizes                     H_FREE
#   +3   END               word index of the end marker                      H_END
#   +4   SMALL_UNITS       blocks below SMALL_UNITS*16 bytes use exact bins  H_SMALL_UNITS
#   +5   LAST_CLASS        the last trie class (it also takes every larger size) H_LAST_CLASS
#   +6   TREEMAP           bit c set: trie class c is not empty              H_TREEMAP
#   +7   BASE_TAIL         bytes past the end marker when formatted or shrunk H_BASE_TAIL
#                          (the unaligned tail; grow takes in only what comes after it)
#   +8   SMALLMAP_SUMMARY  bit w set: SMALLMAP word w is not zero            H_SUMMARY
#   +9   SMALLMAP[ceil(SMALL_UNITS/64)]   bit u set: bin u is not empty      H_SMALLMAP
#        BIN_HEADS[SMALL_UNITS-3]         oldest block of bins 3.., or 0
#        TRIE_ROOTS[LAST_CLASS-FIRST_CLASS+1]  root of each trie class, or 0
#        padding to 16 bytes, then the first block
#
#  A trie class c holds the sizes (bytes) of bit length c: [2**(c-1), 2**c); FIRST_CLASS is
#  the bit length of SMALL_UNITS*16, and LAST_CLASS takes every size from 2**(LAST_CLASS-1).
#
#  Every block, at word b (b*8 a multiple of 16), size a multiple of 16 bytes:
#
#   b+0  +----------------------------------------------------+
#        | PREV_SIZE   size of the previous block, valid only |  B_PREV_SIZE
#        |             while it is free (else its last word)  |
#   b+1  +----------------------------------------------------+
#        | SIZE_FLAGS  size | PREV_ALLOCATED | ALLOCATED      |  B_SIZE
#   b+2  +----------------------------------------------------+  = the offset handed out
#        | allocated: payload, running on into word 0 of the  |
#        | next block (size - 8 usable bytes)                 |
#        +----------------------------------------------------+
#
#  A free block in a bin or a trie keeps links in its payload:
#
#   b+2  NEXT      circular list of its bin / of its trie node's size, oldest first  B_NEXT
#   b+3  PREV                                                                        B_PREV
#   b+4  CHILD0    trie only: child whose next size bit is 0                         B_CHILD0
#   b+5  CHILD1    trie only: child whose next size bit is 1                         B_CHILD1
#   b+6  PARENT    trie only: parent node, the root slot for a root, 0 off the trie  B_PARENT
#
#  and its size again in PREV_SIZE of the next block (the boundary tag). Two free blocks are
#  never neighbours. The top (the free block just before the end marker) is in no bin or trie.
#  The end marker: SIZE_FLAGS = ALLOCATED (size 0) | PREV_ALLOCATED as the last block is.
#  Bytes past the end marker (the region's unaligned tail) are unused.
# ------------------------------------------------------------------------------------------

H_MAGIC = 0
H_SIZE = 1
H_FREE = 2
H_END = 3
H_SMALL_UNITS = 4
H_LAST_CLASS = 5
H_TREEMAP = 6
H_BASE_TAIL = 7
H_SUMMARY = 8
H_SMALLMAP = 9

B_PREV_SIZE = 0
B_SIZE = 1
B_NEXT = 2
B_PREV = 3
B_CHILD0 = 4
B_CHILD1 = 5
B_PARENT = 6
#: link words a free block keeps after its header, in a bin and in a trie
BIN_LINKS = 2
TRIE_LINKS = 5
#: smallest block size in units (bins below it stay empty)
MIN_UNITS = MIN_BLOCK // ALIGNMENT
#: the highest bit a size can have: trie walks in the last class start here
TOP_BIT = 63

LAYOUT_VERSION = 1
MAGIC = int.from_bytes(b"bestfit" + LAYOUT_VERSION.to_bytes(1, "little"), "little")


def _header_words(small_units: int, last_class: int) -> int:
    """Words of the region header for these parameters (before padding to 16 bytes)."""
    first_class = (small_units * ALIGNMENT).bit_length()
    return (H_SMALLMAP + (small_units + 63) // 64 + (small_units - MIN_UNITS)
            + (last_class - first_class + 1))


def _first_block(start: int, small_units: int, last_class: int) -> int:
    """Word index of the first block: after the header, rounded up to ALIGNMENT."""
    header_end = start + _header_words(small_units, last_class) * WORD
    return -(-header_end // ALIGNMENT) * ALIGNMENT // WORD


def _block_bytes(size: int) -> int:
    """Boost's ``priv_get_total_units`` in bytes: the block an allocation of ``size`` takes."""
    return MIN_BLOCK if size <= MIN_BLOCK_REQUEST else (size + BORROWED + FLAGS) & -ALIGNMENT


#: the smallest region ``format`` accepts: the fewest header words, one minimum block, the end
MIN_SEGMENT_SIZE = (_first_block(0, MIN_SMALL_UNITS, (MIN_SMALL_UNITS * ALIGNMENT).bit_length())
                    * WORD + MIN_BLOCK + END_MARKER)


def _fault(message: str) -> SegmentCorrupt:
    return SegmentCorrupt(f"best_fit: {message}")


class BestFit(MemoryAlgorithm):
    """Best fit with boundary tags, Boost's ``rbtree_best_fit`` arithmetic, all in the buffer.

    The instance holds the buffer views, the start and constants fixed at ``format`` (read
    back by ``attach``); every mutable word lives in the segment.
    """

    name = "best_fit"
    layout_version = LAYOUT_VERSION
    ALIGNMENT = ALIGNMENT
    PAYLOAD_PER_ALLOCATION = PAYLOAD_PER_ALLOCATION
    MIN_SEGMENT_SIZE = MIN_SEGMENT_SIZE

    __slots__ = ("_buf", "_w", "_start", "_h", "_small_units", "_last_class", "_first_class",
                 "_small_limit", "_heads0", "_roots0", "_first", "_smallmap", "_summary", "_treemap", "_free",
                 "_end")

    # -- binding ---------------------------------------------------------------------------
    def __init__(self, buf: memoryview, start: int) -> None:
        """Bind to ``buf`` and derive the constant offsets from the header's parameters."""
        buf = buf.cast("B") if buf.format != "B" else buf
        self._buf = buf
        self.words = Words(buf)
        self._start = start
        h = self._h = start // WORD
        w = self.words
        small_units = self._small_units = w[h + H_SMALL_UNITS]
        last_class = self._last_class = w[h + H_LAST_CLASS]
        self._small_limit = small_units * ALIGNMENT
        self._first_class = self._small_limit.bit_length()
        self._smallmap = h + H_SMALLMAP
        self._summary = h + H_SUMMARY
        self._treemap = h + H_TREEMAP
        self._free = h + H_FREE
        self._end = h + H_END
        self._heads0 = self._smallmap + (small_units + 63) // 64 - MIN_UNITS
        self._roots0 = self._heads0 + small_units - self._first_class
        self._first = _first_block(start, small_units, last_class)

    @classmethod
    def format(cls, buf: memoryview, start: int, size: int) -> BestFit:
        """Lay out an empty region: the header, one free block (the top) and the end marker."""
        check_region(len(buf), start, size, alignment=ALIGNMENT, min_size=MIN_SEGMENT_SIZE)
        per_unit = size // REGION_BYTES_PER_SMALL_UNIT
        small_units = max(MIN_SMALL_UNITS,
                          min(MAX_SMALL_UNITS, 1 << max(per_unit.bit_length() - 1, 0)))
        last_class = max((small_units * ALIGNMENT).bit_length(), size.bit_length())
        first = _first_block(start, small_units, last_class)
        end = (start + size) // ALIGNMENT * ALIGNMENT // WORD - END_MARKER // WORD
        if end - first < MIN_BLOCK // WORD:
            raise ValueError(f"size={size} leaves no room for a block after the header")
        view = buf.cast("B") if buf.format != "B" else buf
        header = [0] * _header_words(small_units, last_class)
        header[H_MAGIC], header[H_SIZE], header[H_END] = MAGIC, size, end
        header[H_SMALL_UNITS], header[H_LAST_CLASS] = small_units, last_class
        header[H_BASE_TAIL] = start + size - (end * WORD + END_MARKER)
        view[start: start + len(header) * WORD] = b"".join(
            word.to_bytes(WORD, "little") for word in header)
        alg = cls(view, start)
        top = (end - first) * WORD
        w = alg.words
        w[alg._free] = top
        w[first + B_SIZE] = top | PREV_ALLOCATED
        w[end + B_PREV_SIZE] = top
        w[end + B_SIZE] = ALLOCATED
        if top < alg._small_limit:
            alg._link(first, top)
        return alg

    @classmethod
    def attach(cls, buf: memoryview, start: int) -> BestFit:
        """Bind to a formatted region; ``SegmentCorrupt`` when its header is not sane."""
        view = buf.cast("B") if buf.format != "B" else buf
        if start % ALIGNMENT or start < 0 or start + MIN_SEGMENT_SIZE > len(view):
            raise _fault(f"no region fits at start={start} in {len(view)} bytes")
        head = bytes(view[start: start + H_SMALLMAP * WORD])
        fields = [int.from_bytes(head[i: i + WORD], "little") for i in range(0, len(head), WORD)]
        if fields[H_MAGIC] != MAGIC:
            raise _fault("bad magic: the region was not formatted by best_fit (layout 1)")
        small_units, last_class = fields[H_SMALL_UNITS], fields[H_LAST_CLASS]
        if (small_units not in {1 << k for k in range(3, 11)}
                or not (small_units * ALIGNMENT).bit_length() <= last_class <= TOP_BIT):
            raise _fault(f"absurd bin parameters {small_units}/{last_class}")
        size, end, base_tail = fields[H_SIZE], fields[H_END], fields[H_BASE_TAIL]
        first = _first_block(start, small_units, last_class)
        if (start + size > len(view) or end - first < MIN_BLOCK // WORD or end % 2
                or end * WORD + END_MARKER + base_tail > start + size
                or base_tail >= ALIGNMENT):
            raise _fault(f"region size {size} / end marker {end * WORD} do not fit the buffer")
        return cls(view, start)

    # -- free structures: exact bins, tries, top -------------------------------------------
    def _link(self, b: int, size: int) -> None:
        """File free block ``b`` as the newest of its size (never the top)."""
        units = size >> 4
        if units >= self._small_units:
            self._trie_link(b, size)
            return
        w = self.words
        slot = self._heads0 + units
        head = w[slot]
        if head:
            last = w[head + B_PREV]
            w[b + B_NEXT] = head
            w[b + B_PREV] = last
            w[last + B_NEXT] = b
            w[head + B_PREV] = b
            return
        w[slot] = b
        w[b + B_NEXT] = b
        w[b + B_PREV] = b
        mapword = units >> 6
        w[self._smallmap + mapword] |= 1 << (units & 63)
        w[self._summary] |= 1 << mapword

    def _unlink(self, b: int, size: int) -> None:
        """Take free block ``b`` (not the top) out of its bin or trie."""
        units = size >> 4
        if units >= self._small_units:
            self._trie_unlink(b)
            return
        w = self.words
        nxt = w[b + B_NEXT]
        slot = self._heads0 + units
        if nxt != b:
            prv = w[b + B_PREV]
            w[prv + B_NEXT] = nxt
            w[nxt + B_PREV] = prv
            if w[slot] == b:
                w[slot] = nxt
            return
        w[slot] = 0
        mapword = units >> 6
        at = self._smallmap + mapword
        bits = w[at] & ~(1 << (units & 63))
        w[at] = bits
        if not bits:
            w[self._summary] &= ~(1 << mapword)

    def _trie_class(self, size: int) -> tuple[int, int]:
        """The trie class of ``size`` and the bit its walk starts with."""
        cls = size.bit_length()
        if cls >= self._last_class:
            return self._last_class, TOP_BIT
        return cls, cls - 2

    def _trie_link(self, b: int, size: int) -> None:
        """Insert ``b``: a new trie node, or the newest in the list of a node of its size."""
        w = self.words
        cls, top_bit = self._trie_class(size)
        w[b + B_CHILD0] = 0
        w[b + B_CHILD1] = 0
        slot = self._roots0 + cls
        node = w[slot]
        if not node:
            w[slot] = b
            w[self._treemap] |= 1 << cls
            w[b + B_PARENT] = slot
            w[b + B_NEXT] = b
            w[b + B_PREV] = b
            return
        for bit in range(top_bit, -1, -1):
            if w[node + B_SIZE] & -ALIGNMENT == size:
                last = w[node + B_PREV]
                w[b + B_NEXT] = node
                w[b + B_PREV] = last
                w[last + B_NEXT] = b
                w[node + B_PREV] = b
                w[b + B_PARENT] = 0
                return
            child = node + B_CHILD0 + ((size >> bit) & 1)
            nxt = w[child]
            if not nxt:
                w[child] = b
                w[b + B_PARENT] = node
                w[b + B_NEXT] = b
                w[b + B_PREV] = b
                return
            node = nxt
        raise _fault(f"trie of class {cls} is deeper than its sizes have bits")

    def _trie_unlink(self, b: int) -> None:
        """Remove ``b``; the next-oldest block of its size, or a leaf, takes its place."""
        w = self.words
        nxt = w[b + B_NEXT]
        parent = w[b + B_PARENT]
        if nxt != b:
            prv = w[b + B_PREV]
            w[prv + B_NEXT] = nxt
            w[nxt + B_PREV] = prv
            if not parent:
                return
            heir = nxt
        else:
            heir = w[b + B_CHILD1] or w[b + B_CHILD0]
            if heir:
                slot = b + (B_CHILD1 if w[b + B_CHILD1] else B_CHILD0)
                for _ in range(TOP_BIT + 1):
                    if w[heir + B_CHILD1]:
                        slot = heir + B_CHILD1
                    elif w[heir + B_CHILD0]:
                        slot = heir + B_CHILD0
                    else:
                        break
                    heir = w[slot]
                else:
                    raise _fault(f"trie below block {b * WORD} is deeper than sizes have bits")
                w[slot] = 0
        if parent < self._first:
            w[parent] = heir
            if not heir:
                w[self._treemap] &= ~(1 << (parent - self._roots0))
        elif w[parent + B_CHILD0] == b:
            w[parent + B_CHILD0] = heir
        else:
            w[parent + B_CHILD1] = heir
        if heir:
            w[heir + B_PARENT] = parent
            for side in (B_CHILD0, B_CHILD1):
                child = w[b + side]
                w[heir + side] = child
                if child:
                    w[child + B_PARENT] = heir

    def _trie_best(self, nb: int) -> int:
        """The smallest (then oldest) trie block of at least ``nb`` bytes, or 0 (dlmalloc's
        ``tmalloc_large``: walk ``nb``'s path, remembering the last right subtree passed)."""
        w = self.words
        treemap = w[self._treemap]
        cls, top_bit = self._trie_class(nb)
        best = node = 0
        best_rest = 1 << 64
        if treemap >> cls & 1:
            node = w[self._roots0 + cls]
            right_passed = 0
            for bit in range(top_bit, -1, -1):
                rest = (w[node + B_SIZE] & -ALIGNMENT) - nb
                if 0 <= rest < best_rest:
                    best, best_rest = node, rest
                    if not rest:
                        return best
                right = w[node + B_CHILD1]
                node = w[node + B_CHILD0 + ((nb >> bit) & 1)]
                if right and right != node:
                    right_passed = right
                if not node:
                    node = right_passed
                    break
            else:
                raise _fault(f"trie of class {cls} is deeper than its sizes have bits")
        if not node and not best:
            higher = treemap >> (cls + 1)
            if not higher:
                return 0
            node = w[self._roots0 + cls + (higher & -higher).bit_length()]
        for _ in range(TOP_BIT + 1):
            if not node:
                return best
            rest = (w[node + B_SIZE] & -ALIGNMENT) - nb
            if 0 <= rest < best_rest:
                best, best_rest = node, rest
            node = w[node + B_CHILD0] or w[node + B_CHILD1]
        raise _fault("a trie's leftmost path is longer than sizes have bits")

    def _is_wild(self, b: int, size: int) -> bool:
        """True for the top when it is too large for a bin: then it is in no structure."""
        return size >= self._small_limit and b + (size >> 3) == self.words[self._end]

    # -- block operations --------------------------------------------------------------------
    def _hand_out(self, b: int, size: int) -> None:
        """Zero the links free block ``b`` kept in a bin or a trie (taken out of it, about to be
        allocated): they become payload. With ``_carve`` zeroing the boundary tag, a block
        allocated after ``zero_free_memory`` reads all zeros, as Boost's allocation clears
        its free-tree hook (``_take`` inlines this for bin blocks)."""
        w = self.words
        links = BIN_LINKS if size >> 4 < self._small_units else TRIE_LINKS
        for word in range(b + B_NEXT, b + B_NEXT + links):
            w[word] = 0

    def _carve(self, b: int, size: int, nb: int, wild: bool) -> None:
        """Allocate ``nb`` bytes at the front of free block ``b`` (already out of its bin) and
        file the rest if it makes a block (a wild rest stays out of the structures)."""
        w = self.words
        rest = size - nb
        if rest >= MIN_BLOCK:
            r = b + (nb >> 3)
            w[b + B_SIZE] = nb | BOTH_ALLOCATED
            w[r + B_SIZE] = rest | PREV_ALLOCATED
            w[r + (rest >> 3)] = rest
            if not wild or rest < self._small_limit:
                self._link(r, rest)
            size = nb
        else:
            w[b + B_SIZE] = size | BOTH_ALLOCATED
            w[b + (size >> 3) + B_PREV_SIZE] = 0  # the boundary tag is payload now
            w[b + (size >> 3) + B_SIZE] |= PREV_ALLOCATED
        w[self._free] -= size

    def _take(self, nb: int) -> int:
        """Allocate a block of ``nb`` bytes by best fit; its word index, or 0.

        The hot path, written out so each word is read once: a bin hit pops the bin's oldest
        block and files the rest (always smaller, so in a bin too) as ``_link`` would; larger
        requests and misses go to ``_take_large``.
        """
        w = self.words
        units = nb >> 4
        if units >= self._small_units:
            return self._take_large(nb)
        smallmap = self._smallmap
        mapword = units >> 6
        bits = w[smallmap + mapword] >> (units & 63)
        if not bits:
            higher = w[self._summary] >> (mapword + 1)
            if not higher:
                return self._take_large(nb)
            mapword += (higher & -higher).bit_length()
            bits = w[smallmap + mapword]
            units = mapword << 6
        units += (bits & -bits).bit_length() - 1
        heads0 = self._heads0
        b = w[heads0 + units]
        nxt = w[b + B_NEXT]
        if nxt != b:
            prv = w[b + B_PREV]
            w[prv + B_NEXT] = nxt
            w[nxt + B_PREV] = prv
            w[heads0 + units] = nxt
        else:
            w[heads0 + units] = 0
            bits = w[smallmap + mapword] & ~(1 << (units & 63))
            w[smallmap + mapword] = bits
            if not bits:
                w[self._summary] &= ~(1 << mapword)
        size = units << 4
        w[b + B_NEXT] = 0  # the links are payload now (_hand_out inlined)
        w[b + B_PREV] = 0
        rest = size - nb
        if rest < MIN_BLOCK:
            w[b + B_SIZE] = size | BOTH_ALLOCATED
            w[b + (size >> 3)] = 0  # so is the boundary tag
            w[b + (size >> 3) + B_SIZE] |= PREV_ALLOCATED
            w[self._free] -= size
            return b
        w[b + B_SIZE] = nb | BOTH_ALLOCATED
        w[self._free] -= nb
        r = b + (nb >> 3)
        w[r + B_SIZE] = rest | PREV_ALLOCATED
        w[r + (rest >> 3)] = rest
        units = rest >> 4
        head = w[heads0 + units]
        if head:
            last = w[head + B_PREV]
            w[r + B_NEXT] = head
            w[r + B_PREV] = last
            w[last + B_NEXT] = r
            w[head + B_PREV] = r
        else:
            self._link(r, rest)
        return b

    def _take_large(self, nb: int) -> int:
        """Best fit from the tries, or the wild top when it is smaller or nothing else fits.

        Carving the wild top (every allocation while the heap grows) is written out: the rest
        stays the wild top, so only three words change.
        """
        w = self.words
        treemap = w[self._treemap]
        cls = nb.bit_length()
        b = self._trie_best(nb) if treemap >> (cls if cls < self._last_class else self._last_class) \
            else 0
        end = w[self._end]
        if not w[end + B_SIZE] & PREV_ALLOCATED:
            top_size = w[end + B_PREV_SIZE]
            if (top_size >= self._small_limit and nb <= top_size
                    and (not b or top_size < w[b + B_SIZE] & -ALIGNMENT)):
                top = end - (top_size >> 3)
                rest = top_size - nb
                if rest < self._small_limit:
                    self._carve(top, top_size, nb, True)
                    return top
                w[top + B_SIZE] = nb | BOTH_ALLOCATED
                w[top + (nb >> 3) + B_SIZE] = rest | PREV_ALLOCATED
                w[end + B_PREV_SIZE] = rest
                w[self._free] -= nb
                return top
        if b:
            self._trie_unlink(b)
            size = w[b + B_SIZE] & -ALIGNMENT
            self._hand_out(b, size)
            self._carve(b, size, nb, False)
        return b

    def _live(self, offset: int) -> int:
        """The flags word of the live block at ``offset`` (its block is ``offset // 8 - 2``);
        ``InvalidPointer`` for anything else.

        Checks the block's header against both neighbours' tags, so a double free, an offset
        inside a block or past the end is refused before anything is written.
        """
        if type(offset) is not int:
            raise InvalidPointer(f"offset {offset!r} is not an int")
        w = self.words
        end = w[self._end]
        b = (offset >> 3) - 2
        if offset & FLAGS or not self._first <= b < end:
            raise InvalidPointer(f"offset {offset} is not a block of this best_fit region")
        flags = w[b + B_SIZE]
        size = flags & -ALIGNMENT
        n = b + (size >> 3)
        if (not flags & ALLOCATED or size < MIN_BLOCK or n > end
                or not w[n + B_SIZE] & PREV_ALLOCATED):
            raise InvalidPointer(f"offset {offset} is not a live block (freed twice?)")
        if not flags & PREV_ALLOCATED:
            prev_size = w[b + B_PREV_SIZE]
            p = b - (prev_size >> 3)
            if p < self._first or w[p + B_SIZE] != prev_size | PREV_ALLOCATED:
                raise InvalidPointer(f"offset {offset} is not a live block (bad boundary tag)")
        return flags

    # -- public allocation API ---------------------------------------------------------------
    def allocate(self, size: int) -> int | None:
        """Best fit: the smallest free block that holds ``size``, split at the front."""
        try:
            b = self._take(MIN_BLOCK if size <= MIN_BLOCK_REQUEST
                           else (size + BORROWED + FLAGS) & -ALIGNMENT)
        except DAMAGE as exc:
            raise damaged(self.name, "allocate", exc) from exc
        return (b + 2) << 3 if b else None

    def deallocate(self, offset: int) -> None:
        """Free a live block, merged with its free neighbours, and file it; ``InvalidPointer``
        (nothing changed) for anything else. Filing in a bin that already has blocks, the
        common case, is written out as ``_link`` does it."""
        try:
            flags = self._live(offset)
            b = (offset >> 3) - 2
            size = flags & -ALIGNMENT
            w = self.words
            end = w[self._end]
            w[self._free] += size
            if not flags & PREV_ALLOCATED:
                prev_size = w[b + B_PREV_SIZE]
                p = b - (prev_size >> 3)
                self._unlink(p, prev_size)
                # the absorbed header now reads "free": freeing its offset again is refused
                w[b + B_SIZE] = size
                b = p
                size += prev_size
            n = b + (size >> 3)
            next_flags = w[n + B_SIZE]
            if not next_flags & ALLOCATED:
                next_size = next_flags & -ALIGNMENT
                after = n + (next_size >> 3)
                if after != end or next_size < self._small_limit:
                    self._unlink(n, next_size)
                size += next_size
                n = after
            else:
                w[n + B_SIZE] = next_flags & ~PREV_ALLOCATED
            w[b + B_SIZE] = size | PREV_ALLOCATED
            w[n + B_PREV_SIZE] = size
            units = size >> 4
            if units < self._small_units:
                head = w[self._heads0 + units]
                if head:
                    last = w[head + B_PREV]
                    w[b + B_NEXT] = head
                    w[b + B_PREV] = last
                    w[last + B_NEXT] = b
                    w[head + B_PREV] = b
                    return
            if n != end or units < self._small_units:
                self._link(b, size)
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged(self.name, "deallocate", exc) from exc

    def usable_size(self, offset: int) -> int:
        """The block's size less its 8-byte cost: what the caller may write from ``offset``."""
        return (self._live(offset) & -ALIGNMENT) - PAYLOAD_PER_ALLOCATION

    @damage_is_corruption
    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        """Best fit for a block that can hold an aligned one; the unused front (0 or at least
        a minimum block) and tail go back to the free structures. When no block is that large
        every free block is tried, so a fit is never missed (Boost doubles the request)."""
        if alignment <= ALIGNMENT:
            return self.allocate(size)
        nb = _block_bytes(size)
        b = self._take(nb + alignment + 2 * ALIGNMENT)
        if not b:
            b = self._take_aligned_anywhere(nb, alignment)
            if not b:
                return None
        return self._trim_aligned(b, nb, alignment)

    def _front_gap(self, b: int, alignment: int) -> int:
        """Bytes from block ``b`` to the aligned block inside it: 0 or a splittable front."""
        user = b * WORD + BLOCK_HEADER
        gap = -user % alignment
        return gap + alignment if 0 < gap < MIN_BLOCK else gap

    def _take_aligned_anywhere(self, nb: int, alignment: int) -> int:
        """Allocate, whole, the smallest free block that can hold ``nb`` aligned bytes; or 0."""
        best = best_size = 0
        for offset, size in self.free_blocks():
            b = offset // WORD
            if self._front_gap(b, alignment) + nb <= size and (not best or size < best_size):
                best, best_size = b, size
        if not best:
            return 0
        wild = self._is_wild(best, best_size)
        if not wild:
            self._unlink(best, best_size)
            self._hand_out(best, best_size)
        self._carve(best, best_size, best_size, wild)
        return best

    def _trim_aligned(self, b: int, nb: int, alignment: int) -> int:
        """Free the front and the tail of allocated block ``b`` around its aligned part."""
        w = self.words
        size = w[b + B_SIZE] & -ALIGNMENT
        gap = self._front_gap(b, alignment)
        if gap:
            a = b + (gap >> 3)
            w[b + B_SIZE] = gap | PREV_ALLOCATED
            w[a + B_PREV_SIZE] = gap
            w[a + B_SIZE] = (size - gap) | ALLOCATED
            w[self._free] += gap
            self._link(b, gap)
            b, size = a, size - gap
        self._split_off(b, nb)
        return (b + 2) << 3

    def _split_off(self, b: int, keep: int) -> bool:
        """Shrink allocated block ``b`` to ``keep`` bytes and free the tail; a tail too small
        for a block joins a free successor. False (nothing done) when there is no tail or it
        can go nowhere."""
        w = self.words
        flags = w[b + B_SIZE]
        size = flags & -ALIGNMENT
        rest = size - keep
        tail = b + (keep >> 3)
        if rest >= MIN_BLOCK:
            w[b + B_SIZE] = keep | (flags & FLAGS)
            w[tail + B_SIZE] = rest | BOTH_ALLOCATED
            self.deallocate((tail + 2) << 3)
            return True
        n = b + (size >> 3)
        next_flags = w[n + B_SIZE]
        if not rest or next_flags & ALLOCATED:
            return False
        next_size = next_flags & -ALIGNMENT
        if not self._is_wild(n, next_size):
            self._unlink(n, next_size)
        merged = rest + next_size
        w[b + B_SIZE] = keep | (flags & FLAGS)
        w[tail + B_SIZE] = merged | PREV_ALLOCATED
        w[tail + (merged >> 3)] = merged
        w[self._free] += rest
        if not self._is_wild(tail, merged):
            self._link(tail, merged)
        return True

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        """Boost's ``allocation_command``; ``received_size`` is always the block's usable size.

        Shrinking keeps ``[preferred, limit]``; expansion tries forward, then backward (into a
        free predecessor, with the forward neighbour too when both are asked), before
        ``ALLOCATE_NEW``, which takes ``preferred`` if some block has it, else the largest
        block when that holds ``limit``.
        """
        cmd = int(command)
        if not command_can_succeed(cmd, limit_size, preferred_size, reuse):
            return None, 0
        try:
            if cmd & SHRINKS:
                assert reuse is not None
                return self._shrink(reuse, limit_size, preferred_size,
                                    bool(cmd & TRY_SHRINK_IN_PLACE))
            if reuse is not None and cmd & EXPAND:
                old = self.usable_size(reuse) if cmd & ZERO_MEMORY else 0
                got = self._expand(reuse, cmd, limit_size, preferred_size)
                if got is not None:
                    if cmd & ZERO_MEMORY:
                        self._zero_new(got, reuse, old)
                    return got
            if cmd & ALLOCATE_NEW:
                b = self._take(_block_bytes(preferred_size)) or self._take_largest(limit_size)
                if b:
                    offset = (b + 2) << 3
                    received = (self.words[b + B_SIZE] & -ALIGNMENT) - PAYLOAD_PER_ALLOCATION
                    if cmd & ZERO_MEMORY:
                        self._buf[offset: offset + received] = bytes(received)
                    return offset, received
            return None, 0
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged(self.name, "allocation_command", exc) from exc

    def _zero_new(self, got: tuple[int, int], old_offset: int, old_usable: int) -> None:
        """Zero what an expansion added: the front taken backwards and the new tail."""
        offset, received = got
        buf = self._buf
        buf[offset: old_offset] = bytes(old_offset - offset)
        old_end, new_end = old_offset + old_usable, offset + received
        if new_end > old_end:
            buf[old_end: new_end] = bytes(new_end - old_end)

    def _take_largest(self, limit_size: int) -> int:
        """Allocate the whole largest free block if it holds ``limit_size`` (Boost's fallback
        for ``ALLOCATE_NEW``); its word index, or 0."""
        largest = largest_size = 0
        for offset, size in self.free_blocks():
            if size > largest_size:
                largest, largest_size = offset // WORD, size
        if not largest or largest_size - PAYLOAD_PER_ALLOCATION < limit_size:
            return 0
        wild = self._is_wild(largest, largest_size)
        if not wild:
            self._unlink(largest, largest_size)
            self._hand_out(largest, largest_size)
        self._carve(largest, largest_size, largest_size, wild)
        return largest

    def _shrink(self, offset: int, limit: int, preferred: int, try_only: bool
                ) -> tuple[int | None, int]:
        """Boost's ``shrink``: cut the block to ``preferred`` (a minimum block at least) and
        free the tail; a block already within ``[preferred, limit]`` is left as it is."""
        flags = self._live(offset)
        b = (offset >> 3) - 2
        usable = (flags & -ALIGNMENT) - PAYLOAD_PER_ALLOCATION
        keep = _block_bytes(preferred)
        if usable >= preferred and keep - PAYLOAD_PER_ALLOCATION <= limit:
            if self._split_off(b, keep):
                return offset, keep - PAYLOAD_PER_ALLOCATION
            if usable <= limit:
                return offset, usable
        return (offset, usable) if try_only else (None, 0)

    def _expand(self, offset: int, cmd: int, limit: int, preferred: int
                ) -> tuple[int, int] | None:
        """Grow the block in place to hold ``limit`` (``preferred`` if there is room), taking
        first from a free successor, then from the end of a free predecessor."""
        w = self.words
        flags = self._live(offset)
        b = (offset >> 3) - 2
        size = flags & -ALIGNMENT
        if size - PAYLOAD_PER_ALLOCATION >= limit:
            return offset, size - PAYLOAD_PER_ALLOCATION
        n = b + (size >> 3)
        next_flags = w[n + B_SIZE]
        fwd = next_flags & -ALIGNMENT if cmd & EXPAND_FWD and not next_flags & ALLOCATED else 0
        bwd = w[b + B_PREV_SIZE] if cmd & EXPAND_BWD and not flags & PREV_ALLOCATED else 0
        if size + fwd + bwd - PAYLOAD_PER_ALLOCATION < limit:
            return None
        # what to add (> 0: the block is below limit); forward first, where data need not move
        wanted = _block_bytes(preferred) - size
        take_fwd = wanted if wanted < fwd else fwd
        if fwd - take_fwd < MIN_BLOCK:
            take_fwd = fwd
        take_bwd = wanted - take_fwd if wanted > take_fwd else 0
        if take_bwd > bwd or bwd - take_bwd < MIN_BLOCK:
            take_bwd = bwd
        if take_fwd:
            wild = self._is_wild(n, fwd)
            if not wild:
                self._unlink(n, fwd)
            self._carve(n, fwd, take_fwd, wild)
            w[n + B_SIZE] = take_fwd  # the absorbed header, now payload, reads "free"
        if take_bwd:
            p = b - (bwd >> 3)
            self._unlink(p, bwd)
            w[self._free] -= take_bwd
            w[b + B_SIZE] = size  # the old header, now payload, reads "free"
            if take_bwd < bwd:
                w[p + B_SIZE] = (bwd - take_bwd) | PREV_ALLOCATED
                b = p + ((bwd - take_bwd) >> 3)
                w[b + B_PREV_SIZE] = bwd - take_bwd
                self._link(p, bwd - take_bwd)
                prev_flag = 0
            else:
                b = p
                prev_flag = PREV_ALLOCATED
        else:
            prev_flag = flags & PREV_ALLOCATED
        size += take_fwd + take_bwd
        w[b + B_SIZE] = size | ALLOCATED | prev_flag
        return (b + 2) << 3, size - PAYLOAD_PER_ALLOCATION

    # -- region size -----------------------------------------------------------------------
    def grow(self, extra: int) -> None:
        """Take in ``extra`` bytes appended to the region: the whole 16-byte units past the end
        marker (less the unaligned tail the region was made with) extend the top or become a
        new top. A gap too small for a block after an allocated last block waits past the end
        marker for the next ``grow`` (Boost moves its marker and leaves a block too small to
        be one)."""
        w = self.words
        check_grow(extra, self._start + w[self._h + H_SIZE], len(self._buf))
        size = w[self._h + H_SIZE] + extra
        w[self._h + H_SIZE] = size
        end = w[self._end]
        gap = (self._start + size - (end * WORD + END_MARKER) - w[self._h + H_BASE_TAIL]) \
            & -ALIGNMENT
        last_free = not w[end + B_SIZE] & PREV_ALLOCATED
        if gap and (last_free or gap >= MIN_BLOCK):
            new_end = end + (gap >> 3)
            if last_free:
                top_size = w[end + B_PREV_SIZE]
                b, block_size = end - (top_size >> 3), top_size + gap
                if top_size < self._small_limit:
                    self._unlink(b, top_size)
            else:
                b, block_size = end, gap
            w[b + B_SIZE] = block_size | PREV_ALLOCATED
            w[new_end + B_PREV_SIZE] = block_size
            w[new_end + B_SIZE] = ALLOCATED
            w[self._end] = new_end
            w[self._free] += gap
            if block_size < self._small_limit:
                self._link(b, block_size)

    def shrink_to_fit(self) -> int:
        """Drop the top (all but a minimum block when nothing is allocated, as Boost keeps its
        "unique block") and the unused tail; return the new region size."""
        w = self.words
        end = w[self._end]
        if not w[end + B_SIZE] & PREV_ALLOCATED:
            top_size = w[end + B_PREV_SIZE]
            top = end - (top_size >> 3)
            if top_size < self._small_limit:
                self._unlink(top, top_size)
            if top == self._first:
                end = top + MIN_BLOCK // WORD
                w[top + B_SIZE] = MIN_BLOCK | PREV_ALLOCATED
                w[end + B_PREV_SIZE] = MIN_BLOCK
                w[end + B_SIZE] = ALLOCATED
                w[self._free] -= top_size - MIN_BLOCK
                self._link(top, MIN_BLOCK)
            else:
                end = top
                w[end + B_SIZE] = BOTH_ALLOCATED
                w[self._free] -= top_size
            w[self._end] = end
        size = end * WORD + END_MARKER - self._start
        w[self._h + H_SIZE] = size
        w[self._h + H_BASE_TAIL] = 0
        return size

    @property
    def size(self) -> int:
        """Region bytes from ``start``, the header included."""
        return self.words[self._h + H_SIZE]

    @property
    def free_memory(self) -> int:
        """Bytes in free blocks (what ``free_blocks`` lists)."""
        return self.words[self._free]

    # -- checks and introspection (cold paths) ---------------------------------------------
    def _blocks(self) -> Iterator[tuple[int, int, int]]:
        """``(block, size, flags)`` along the physical chain, its tags checked on the way.

        Bounded: every step advances by a minimum block at least and stops at the end marker.
        """
        w, end = self.words, self.words[self._end]
        b = self._first
        prev_free = False
        for _ in range((end - b) * WORD // MIN_BLOCK + 1):
            if b == end:
                if w[end + B_SIZE] != ALLOCATED | (0 if prev_free else PREV_ALLOCATED):
                    raise _fault(f"end marker at {end * WORD} is damaged")
                return
            flags = w[b + B_SIZE]
            size = flags & -ALIGNMENT
            if size < MIN_BLOCK or b + (size >> 3) > end:
                raise _fault(f"block at {b * WORD} has an impossible size {size}")
            if bool(flags & PREV_ALLOCATED) == prev_free:
                raise _fault(f"block at {b * WORD} has a wrong previous-allocated bit")
            is_free = not flags & ALLOCATED
            if is_free and prev_free:
                raise _fault(f"free blocks at {b * WORD} and before it were not merged")
            if is_free and w[b + (size >> 3) + B_PREV_SIZE] != size:
                raise _fault(f"free block at {b * WORD} has a wrong boundary tag")
            yield b, size, flags
            prev_free = is_free
            b += size >> 3
        raise _fault("the block chain does not reach the end marker")

    @damage_is_corruption
    def verify(self) -> None:
        """Walk the block chain, then every bin and trie, and check that they agree."""
        w = self.words
        end = w[self._end]
        if w[self._h + H_MAGIC] != MAGIC:
            raise _fault("bad magic")
        if not self._first + MIN_BLOCK // WORD <= end or end * WORD + END_MARKER + w[
                self._h + H_BASE_TAIL] > self._start + w[self._h + H_SIZE]:
            raise _fault(f"end marker {end * WORD} is outside the region")
        filed: dict[int, int] = {}
        total = top = 0
        for b, size, flags in self._blocks():
            if not flags & ALLOCATED:
                total += size
                if self._is_wild(b, size):
                    top = b
                else:
                    filed[b] = size
        if total != w[self._free]:
            raise _fault(f"free bytes {w[self._free]} but the free blocks hold {total}")
        budget = len(filed)
        for b, size in self._filed_blocks(budget):
            if filed.pop(b, None) != size:
                raise _fault(f"block at {b * WORD} is filed as free ({size}) but is not"
                             + (" (the top)" if b == top else ""))
        if filed:
            raise _fault(f"free block at {min(filed) * WORD} is in no bin or trie")

    def _list(self, head: int, budget: int) -> Iterator[int]:
        """The blocks of a circular list from ``head``, links checked; bounded by ``budget``."""
        w = self.words
        b = head
        for _ in range(budget + 1):
            yield b
            nxt = w[b + B_NEXT]
            if w[nxt + B_PREV] != b:
                raise _fault(f"list link broken after block {b * WORD}")
            b = nxt
            if b == head:
                return
        raise _fault(f"the list at block {head * WORD} is longer than the free blocks")

    def _filed_blocks(self, budget: int) -> Iterator[tuple[int, int]]:
        """``(block, size)`` of every block in a bin or a trie; bitmaps checked; bounded."""
        w = self.words
        summary = w[self._summary]
        for units in range(MIN_UNITS, self._small_units):
            head = w[self._heads0 + units]
            mapword = units >> 6
            marked = w[self._smallmap + mapword] >> (units & 63) & 1
            if bool(head) != bool(marked) or (marked and not summary >> mapword & 1):
                raise _fault(f"bitmap disagrees with bin {units}")
            if head:
                for b in self._list(head, budget):
                    yield b, units << 4
        for mapword in range((self._small_units + 63) // 64):
            if bool(w[self._smallmap + mapword]) != bool(summary >> mapword & 1):
                raise _fault(f"summary disagrees with bitmap word {mapword}")
        treemap = w[self._treemap]
        for cls in range(self._first_class, self._last_class + 1):
            root = w[self._roots0 + cls]
            if bool(root) != bool(treemap >> cls & 1):
                raise _fault(f"treemap disagrees with trie class {cls}")
            if root:
                yield from self._trie_blocks(cls, root, budget)

    def _trie_blocks(self, cls: int, root: int, budget: int) -> Iterator[tuple[int, int]]:
        """Every block of one trie (nodes and their same-size lists), its links checked."""
        w = self.words
        low = 1 << (cls - 1)
        high = 1 << 64 if cls == self._last_class else 1 << cls
        pending = [(root, self._roots0 + cls)]
        for _ in range(budget + 1):
            if not pending:
                return
            node, parent = pending.pop()
            size = w[node + B_SIZE] & -ALIGNMENT
            if w[node + B_PARENT] != parent or not low <= size < high:
                raise _fault(f"trie node at {node * WORD} is misplaced")
            for b in self._list(node, budget):
                if b != node and (w[b + B_PARENT] or w[b + B_SIZE] & -ALIGNMENT != size):
                    raise _fault(f"block at {b * WORD} is misfiled under {node * WORD}")
                yield b, size
            pending += [(child, node) for child in (w[node + B_CHILD0], w[node + B_CHILD1])
                        if child]
        raise _fault(f"trie of class {cls} has more nodes than there are free blocks")

    def all_memory_deallocated(self) -> bool:
        """True when the free blocks cover every byte between the header and the end marker."""
        return self.words[self._free] == (self.words[self._end] - self._first) * WORD

    def zero_free_memory(self) -> None:
        """Zero every free byte but the headers, links and boundary tags."""
        w, end, buf = self.words, self.words[self._end], self._buf
        for b, size, flags in list(self._blocks()):
            if flags & ALLOCATED:
                continue
            if self._is_wild(b, size):
                links = 0
            else:
                links = BIN_LINKS if size >> 4 < self._small_units else TRIE_LINKS
            start = (b + B_NEXT + links) * WORD
            stop = (b + (size >> 3)) * WORD
            buf[start:stop] = bytes(stop - start)
        assert w[end + B_SIZE] & ALLOCATED, "zeroing must not touch the end marker"

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(block offset, size)`` of every free block, in address order."""
        for b, size, flags in self._blocks():
            if not flags & ALLOCATED:
                yield b * WORD, size

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, usable size)`` of every live block, in address order."""
        for b, size, flags in self._blocks():
            if flags & ALLOCATED:
                yield (b + 2) * WORD, size - PAYLOAD_PER_ALLOCATION


# ------------------------------------------------------------------------------------------
# Plugin registration
# ------------------------------------------------------------------------------------------


@hookimpl
def segalloc_register_algorithms(register: Callable[[type[MemoryAlgorithm]], None]) -> None:
    """Register ``BestFit`` under the name ``best_fit``."""
    register(BestFit)
