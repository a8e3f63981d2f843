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

Reading order (tlsf.c's): constants, in-buffer layout, the circular lists, bins and tries,
the block helpers, the public operations chaining them, region size, checks and introspection,
registration.

One source, two builds: Cython compiles this module in its pure-Python mode (the C types come
from the annotations and ``best_fit.pxd``; the helpers become C functions the compiler inlines);
with ``SEGALLOC_PURE_PYTHON=1`` the same code runs interpreted. Words are read through the
signed view (``Words.signed``) and written through ``Words.store`` (bitmap words with bit 63
set, which ``store`` refuses as negative, through ``words[i] = v``), so a journaled segment logs
every write and a hostile word cannot wrap C arithmetic around.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import cython

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
from segalloc.interfaces import Command, MemoryAlgorithm, compiled_hookimpl
from segalloc.kernel import NO_MEMORY, AlgorithmKernel
from segalloc.words import Words

if not cython.compiled:  # compiled, the C forms come from intrinsics.pxd
    from segalloc.intrinsics import bit_length, lowest_bit

__all__ = ["BestFit"]

# ------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------

#: fixed: Boost's Alignment; every block starts and every block size is a multiple of it
ALIGN = 16
#: fixed: bytes of a word of the layout
WORD = 8
#: fixed: the header an allocated block carries (Boost's SizeHolder: prev size + size)
BLOCK_HEADER = 16
#: fixed: the previous block's last word, lent as a header word (Boost's UsableByPreviousChunk)
BORROWED = 8
#: fixed: what an allocation costs beyond the request rounded up
PAYLOAD = BLOCK_HEADER - BORROWED
#: fixed: Boost's BlockCtrlBytes: the header plus the free-tree hook, rounded up to ALIGN
MIN_BLOCK = 48
#: fixed: the end marker, a bare header that is always "allocated"
END_MARKER = 16
#: fixed: the largest request that still fits a minimum block
MIN_BLOCK_REQUEST = MIN_BLOCK - PAYLOAD
#: tunable: exact-size bins a segment gets at most, and at least; a power of two each
MAX_SMALL_UNITS = 1024
MIN_SMALL_UNITS = 8
#: tunable: a segment gets one exact-size bin per this many region bytes (within the bounds)
REGION_BYTES_PER_SMALL_UNIT = 4096

#: flags in a block's SIZE_FLAGS word (sizes are multiples of 16: the low 4 bits are free)
ALLOCATED = 1
PREV_ALLOCATED = 2
BOTH_ALLOCATED = ALLOCATED | PREV_ALLOCATED
FLAGS = ALIGN - 1
SIZE_MASK = -ALIGN

assert PAYLOAD == 8 and MIN_BLOCK % ALIGN == 0
assert FLAGS >= BOTH_ALLOCATED, "the flags must fit below the size's alignment"
assert MIN_SMALL_UNITS * ALIGN >= 64, "trie nodes (5 link words) must fit the smallest one"

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
#  Bitmap words use all 64 bits: read through the signed view, bit 63 is the sign.
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
#  never neighbours. The top (the free block just before the end marker) is in no bin or trie
#  when it is too large for a bin (the "wild" top).
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
MIN_UNITS = MIN_BLOCK // ALIGN
#: the highest bit a size can have: trie walks in the last class start here
TOP_BIT = 63
#: the largest signed word (above any ``rest`` a best-fit search compares)
MAX_WORD = (1 << 63) - 1
#: a bitmap word as the unsigned value ``words[i] = v`` takes
UNSIGNED_WORD = (1 << 64) - 1
#: requests beyond this cannot be served by any region (and keep the arithmetic in 63 bits)
MAX_REQUEST = 1 << 60

LAYOUT_VERSION = 1
MAGIC = int.from_bytes(b"bestfit" + LAYOUT_VERSION.to_bytes(1, "little"), "little")


def _header_words(small_units: int, last_class: int) -> int:
    """Words of the region header for these parameters (before padding to 16 bytes)."""
    first_class = (small_units * ALIGN).bit_length()
    return (H_SMALLMAP + (small_units + 63) // 64 + (small_units - MIN_UNITS)
            + (last_class - first_class + 1))


def _first_block(start: int, small_units: int, last_class: int) -> int:
    """Word index of the first block: after the header, rounded up to ALIGN."""
    header_end = start + _header_words(small_units, last_class) * WORD
    return -(-header_end // ALIGN) * ALIGN // WORD


def block_bytes(size: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """Boost's ``priv_get_total_units`` in bytes: the block an allocation of ``size`` takes."""
    return MIN_BLOCK if size <= MIN_BLOCK_REQUEST else (size + BORROWED + FLAGS) & SIZE_MASK


#: the smallest region ``format`` accepts: the fewest header words, one minimum block, the end
MIN_SEGMENT_SIZE = (_first_block(0, MIN_SMALL_UNITS, (MIN_SMALL_UNITS * ALIGN).bit_length())
                    * WORD + MIN_BLOCK + END_MARKER)

#: the layout constants as Python values, for tests and inspection tools (compiled, the module's
#: constants are C values, not module attributes)
LAYOUT = SimpleNamespace(MIN_BLOCK=MIN_BLOCK, END_MARKER=END_MARKER, B_SIZE=B_SIZE,
                         B_NEXT=B_NEXT, B_PREV=B_PREV, ALLOCATED=ALLOCATED,
                         PREV_ALLOCATED=PREV_ALLOCATED)


def _fault(message: str) -> SegmentCorrupt:
    return SegmentCorrupt(f"best_fit: {message}")


@cython.cclass
class _BestFit(AlgorithmKernel):
    """The block helpers and operations over the region's words (a C type when compiled).

    Fields are offsets and parameters fixed at ``format`` (read back at binding); every
    mutable word lives in the segment and is read on each call."""

    def __init__(self, buf: memoryview, start: int) -> None:
        """Bind to ``buf`` and derive the constant offsets from the header's parameters
        (absurd ones are clamped: ``attach`` refuses such a region before binding)."""
        view = memoryview(buf).cast("B")
        self._buf = view
        self.words = Words(view)
        self._start = start
        h: cython.Py_ssize_t = start // WORD
        self.control = h
        w: Words = self.words
        small_units: cython.Py_ssize_t = MIN_SMALL_UNITS
        last_class: cython.Py_ssize_t = 0
        if h + H_LAST_CLASS < len(w):
            small_units = w.signed[h + H_SMALL_UNITS]
            last_class = w.signed[h + H_LAST_CLASS]
        if (not MIN_SMALL_UNITS <= small_units <= MAX_SMALL_UNITS
                or small_units & (small_units - 1)):
            small_units = MIN_SMALL_UNITS
        self.small_units = small_units
        self.small_limit = small_units * ALIGN
        self.first_class = bit_length(self.small_limit)
        if not self.first_class <= last_class <= TOP_BIT:
            last_class = self.first_class
        self.last_class = last_class
        self.smallmap = h + H_SMALLMAP
        self.summary = h + H_SUMMARY
        self.treemap = h + H_TREEMAP
        self.free_word = h + H_FREE
        self.end_word = h + H_END
        self.heads0 = self.smallmap + (small_units + 63) // 64 - MIN_UNITS
        self.roots0 = self.heads0 + small_units - self.first_class
        self._first = _first_block(start, small_units, last_class)

    # -- words -----------------------------------------------------------------------------
    def put_bit(self, at: cython.Py_ssize_t, k: cython.Py_ssize_t,
                on: cython.bint) -> cython.Py_ssize_t:
        """Set (``on``) or clear bit ``k`` (0..63) of the bitmap word ``at``; the new word, as
        the signed view reads it. ``store`` takes values below 2**63: a word with bit 63 set
        goes through ``words[at] = v`` (journaled and observed all the same)."""
        one: cython.longlong = 1
        bit: cython.longlong = -MAX_WORD - 1 if k == TOP_BIT else one << k
        old: cython.longlong = self.words.signed[at]
        bits: cython.longlong = old | bit if on else old & ~bit
        if bits >= 0:
            self.words.put(at, bits)
        else:
            self.words[at] = bits & UNSIGNED_WORD
        return bits

    # -- circular lists of equal sizes, oldest first -----------------------------------------
    def ring_append(self, head: cython.Py_ssize_t, b: cython.Py_ssize_t) -> cython.void:
        """Put ``b`` last (the newest) in the circular list that starts at ``head``."""
        w: Words = self.words
        last: cython.Py_ssize_t = w.signed[head + B_PREV]
        w.put(b + B_NEXT, head)
        w.put(b + B_PREV, last)
        w.put(last + B_NEXT, b)
        w.put(head + B_PREV, b)

    def ring_remove(self, b: cython.Py_ssize_t, nxt: cython.Py_ssize_t) -> cython.void:
        """Bypass ``b`` (whose NEXT is ``nxt``, not ``b`` itself) in its circular list."""
        w: Words = self.words
        prv: cython.Py_ssize_t = w.signed[b + B_PREV]
        w.put(prv + B_NEXT, nxt)
        w.put(nxt + B_PREV, prv)

    # -- exact-size bins (dlmalloc's smallbins) ------------------------------------------------
    def bin_insert(self, b: cython.Py_ssize_t, units: cython.Py_ssize_t) -> cython.void:
        """File free block ``b`` as the newest of bin ``units``; mark a bin that was empty."""
        w: Words = self.words
        slot: cython.Py_ssize_t = self.heads0 + units
        head: cython.Py_ssize_t = w.signed[slot]
        if head:
            self.ring_append(head, b)
            return
        w.put(slot, b)
        w.put(b + B_NEXT, b)
        w.put(b + B_PREV, b)
        at: cython.Py_ssize_t = self.smallmap + (units >> 6)
        if not w.signed[at]:  # the summary has fewer than 64 bits: a plain store
            w.put(self.summary, w.signed[self.summary] | (1 << (units >> 6)))
        self.put_bit(at, units & 63, True)

    def bin_remove(self, b: cython.Py_ssize_t, units: cython.Py_ssize_t) -> cython.void:
        """Take ``b`` out of bin ``units``; clear the bitmaps' bits when it empties."""
        w: Words = self.words
        nxt: cython.Py_ssize_t = w.signed[b + B_NEXT]
        slot: cython.Py_ssize_t = self.heads0 + units
        if nxt != b:
            self.ring_remove(b, nxt)
            if w.signed[slot] == b:
                w.put(slot, nxt)
            return
        w.put(slot, 0)
        if not self.put_bit(self.smallmap + (units >> 6), units & 63, False):
            w.put(self.summary, w.signed[self.summary] & ~(1 << (units >> 6)))

    def find_bin(self, units: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The first non-empty bin at ``units`` or above, by the bitmaps; -1 if none."""
        w: Words = self.words
        mapword: cython.Py_ssize_t = units >> 6
        bits: cython.longlong = w.signed[self.smallmap + mapword] >> (units & 63)
        if bits:
            found: cython.Py_ssize_t = units + lowest_bit(bits)
        else:
            higher: cython.longlong = w.signed[self.summary] >> (mapword + 1)
            if not higher:
                return -1
            mapword += lowest_bit(higher) + 1
            bits = w.signed[self.smallmap + mapword] if mapword < 64 else 0
            if not bits:
                raise _fault(f"the bin summary marks the empty bitmap word {mapword}")
            found = (mapword << 6) + lowest_bit(bits)
        if found >= self.small_units:
            raise _fault(f"the bin bitmap marks bin {found}, past the last")
        return found

    # -- bitwise tries, one per power of two (dlmalloc's treebins) ---------------------------
    def trie_class(self, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The trie class of ``size`` (the last class takes every larger size)."""
        cls: cython.Py_ssize_t = bit_length(size)
        return cls if cls < self.last_class else self.last_class

    def top_bit(self, cls: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The size bit a walk down trie ``cls`` starts with."""
        return TOP_BIT if cls == self.last_class else cls - 2

    def trie_insert(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t) -> cython.void:
        """Insert ``b``: a new trie node, or the newest in the list of a node of its size."""
        w: Words = self.words
        cls: cython.Py_ssize_t = self.trie_class(size)
        w.put(b + B_CHILD0, 0)
        w.put(b + B_CHILD1, 0)
        slot: cython.Py_ssize_t = self.roots0 + cls
        node: cython.Py_ssize_t = w.signed[slot]
        if not node:
            w.put(slot, b)
            self.put_bit(self.treemap, cls, True)
            w.put(b + B_PARENT, slot)
            w.put(b + B_NEXT, b)
            w.put(b + B_PREV, b)
            return
        bit: cython.Py_ssize_t = self.top_bit(cls)
        while bit >= 0:
            if w.signed[node + B_SIZE] & SIZE_MASK == size:
                self.ring_append(node, b)
                w.put(b + B_PARENT, 0)
                return
            child: cython.Py_ssize_t = node + B_CHILD0 + ((size >> bit) & 1)
            nxt: cython.Py_ssize_t = w.signed[child]
            if not nxt:
                w.put(child, b)
                w.put(b + B_PARENT, node)
                w.put(b + B_NEXT, b)
                w.put(b + B_PREV, b)
                return
            node = nxt
            bit -= 1
        raise _fault(f"trie of class {cls} is deeper than its sizes have bits")

    def trie_remove(self, b: cython.Py_ssize_t) -> cython.void:
        """Remove ``b``; the next-oldest block of its size, or a leaf, takes its place."""
        w: Words = self.words
        nxt: cython.Py_ssize_t = w.signed[b + B_NEXT]
        parent: cython.Py_ssize_t = w.signed[b + B_PARENT]
        heir: cython.Py_ssize_t
        if nxt != b:
            self.ring_remove(b, nxt)
            if not parent:
                return
            heir = nxt
        else:
            slot: cython.Py_ssize_t = b + B_CHILD1 if w.signed[b + B_CHILD1] else b + B_CHILD0
            heir = w.signed[slot]
            if heir:
                depth: cython.Py_ssize_t = 0
                while True:
                    if w.signed[heir + B_CHILD1]:
                        slot = heir + B_CHILD1
                    elif w.signed[heir + B_CHILD0]:
                        slot = heir + B_CHILD0
                    else:
                        break
                    heir = w.signed[slot]
                    depth += 1
                    if depth > TOP_BIT:
                        raise _fault(f"trie below block {b * WORD} is deeper than sizes have bits")
                w.put(slot, 0)
        if parent < self._first:
            cls: cython.Py_ssize_t = parent - self.roots0
            if not self.first_class <= cls <= self.last_class:
                raise _fault(f"trie node at {b * WORD} has the parent word {parent}")
            w.put(parent, heir)
            if not heir:
                self.put_bit(self.treemap, cls, False)
        elif w.signed[parent + B_CHILD0] == b:
            w.put(parent + B_CHILD0, heir)
        else:
            w.put(parent + B_CHILD1, heir)
        if heir:
            w.put(heir + B_PARENT, parent)
            side: cython.Py_ssize_t
            for side in range(B_CHILD0, B_CHILD1 + 1):
                child: cython.Py_ssize_t = w.signed[b + side]
                w.put(heir + side, child)
                if child:
                    w.put(child + B_PARENT, heir)

    def trie_best(self, nb: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The smallest (then oldest) trie block of at least ``nb`` bytes, or 0 (dlmalloc's
        ``tmalloc_large``: walk ``nb``'s path, remembering the last right subtree passed)."""
        w: Words = self.words
        treemap: cython.longlong = w.signed[self.treemap]
        cls: cython.Py_ssize_t = self.trie_class(nb)
        best: cython.Py_ssize_t = 0
        node: cython.Py_ssize_t = 0
        best_rest: cython.Py_ssize_t = MAX_WORD
        size: cython.Py_ssize_t
        if treemap >> cls & 1:
            node = w.signed[self.roots0 + cls]
            right_passed: cython.Py_ssize_t = 0
            bit: cython.Py_ssize_t = self.top_bit(cls)
            while True:
                if bit < 0:
                    raise _fault(f"trie of class {cls} is deeper than its sizes have bits")
                size = w.signed[node + B_SIZE] & SIZE_MASK
                if size >= nb and size - nb < best_rest:
                    best, best_rest = node, size - nb
                    if not best_rest:
                        return best
                right: cython.Py_ssize_t = w.signed[node + B_CHILD1]
                node = w.signed[node + B_CHILD0 + ((nb >> bit) & 1)]
                if right and right != node:
                    right_passed = right
                if not node:
                    node = right_passed
                    break
                bit -= 1
        if not node and not best:
            higher: cython.longlong = treemap >> (cls + 1) if cls < self.last_class else 0
            if not higher:
                return 0
            cls += lowest_bit(higher) + 1
            if cls > self.last_class:
                raise _fault(f"the treemap marks class {cls}, past the last")
            node = w.signed[self.roots0 + cls]
        _depth: cython.Py_ssize_t
        for _depth in range(TOP_BIT + 1):
            if not node:
                return best
            size = w.signed[node + B_SIZE] & SIZE_MASK
            if size >= nb and size - nb < best_rest:
                best, best_rest = node, size - nb
            child: cython.Py_ssize_t = w.signed[node + B_CHILD0]
            node = child if child else w.signed[node + B_CHILD1]
        raise _fault("a trie's leftmost path is longer than sizes have bits")

    # -- free blocks: filed, unfiled, checked ------------------------------------------------
    def file_free(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t) -> cython.void:
        """File free block ``b`` as the newest of its size (never the wild top)."""
        units: cython.Py_ssize_t = size >> 4
        if units < self.small_units:
            self.bin_insert(b, units)
        else:
            self.trie_insert(b, size)

    def unfile(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t) -> cython.void:
        """Take free block ``b`` (not the wild top) out of its bin or trie."""
        units: cython.Py_ssize_t = size >> 4
        if units < self.small_units:
            self.bin_remove(b, units)
        else:
            self.trie_remove(b)

    def is_wild(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t) -> cython.bint:
        """True for the top when it is too large for a bin: then it is in no structure."""
        return size >= self.small_limit and b + (size >> 3) == self.words.signed[self.end_word]

    def check_free(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t) -> cython.void:
        """``SegmentCorrupt`` unless ``b``, found through a bin, a trie or the end marker, is
        a free block of ``size`` bytes (a free block's predecessor is always allocated)."""
        if b < self._first or self.words.signed[b + B_SIZE] != size | PREV_ALLOCATED:
            raise _fault(f"word {b}, reached as a free block of {size} bytes, is not one")

    # -- blocks: handed out, carved, released --------------------------------------------------
    def hand_out(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t) -> cython.void:
        """Zero the links free block ``b`` kept in a bin or a trie (taken out of it, about to be
        allocated): they become payload. With ``carve`` zeroing the boundary tag, a block
        allocated after ``zero_free_memory`` reads all zeros, as Boost's allocation clears
        its free-tree hook."""
        w: Words = self.words
        w.put(b + B_NEXT, 0)
        w.put(b + B_PREV, 0)
        if size >= self.small_limit:
            w.put(b + B_CHILD0, 0)
            w.put(b + B_CHILD1, 0)
            w.put(b + B_PARENT, 0)

    def carve(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t, nb: cython.Py_ssize_t,
              wild: cython.bint) -> cython.void:
        """Allocate ``nb`` bytes at the front of free block ``b`` (already out of its bin) and
        file the rest if it makes a block (a wild rest stays out of the structures)."""
        w: Words = self.words
        rest: cython.Py_ssize_t = size - nb
        if rest >= MIN_BLOCK:
            t: cython.Py_ssize_t = b + (nb >> 3)
            w.put(b + B_SIZE, nb | BOTH_ALLOCATED)
            w.put(t + B_SIZE, rest | PREV_ALLOCATED)
            w.put(t + (rest >> 3), rest)
            if not wild or rest < self.small_limit:
                self.file_free(t, rest)
            size = nb
        else:
            n: cython.Py_ssize_t = b + (size >> 3)
            w.put(b + B_SIZE, size | BOTH_ALLOCATED)
            w.put(n + B_PREV_SIZE, 0)  # the boundary tag is payload now
            w.put(n + B_SIZE, w.signed[n + B_SIZE] | PREV_ALLOCATED)
        w.put(self.free_word, w.signed[self.free_word] - size)

    def release(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t,
                prev_free: cython.bint) -> cython.void:
        """Free ``[b, b+size)``: merge it with a free predecessor and successor (boundary
        tags) and file the result unless it is the wild top."""
        w: Words = self.words
        w.put(self.free_word, w.signed[self.free_word] + size)
        if prev_free:  # merge_prev
            prev_size: cython.Py_ssize_t = w.signed[b + B_PREV_SIZE]
            p: cython.Py_ssize_t = b - (prev_size >> 3)
            self.unfile(p, prev_size)
            w.put(b + B_SIZE, size)  # the absorbed header reads "free": no second free
            b = p
            size += prev_size
        n: cython.Py_ssize_t = b + (size >> 3)
        next_flags: cython.Py_ssize_t = w.signed[n + B_SIZE]
        if not next_flags & ALLOCATED:  # merge_next
            next_size: cython.Py_ssize_t = next_flags & SIZE_MASK
            if not self.is_wild(n, next_size):
                self.unfile(n, next_size)
            size += next_size
            n += next_size >> 3
        else:
            w.put(n + B_SIZE, next_flags & ~PREV_ALLOCATED)
        w.put(b + B_SIZE, size | PREV_ALLOCATED)
        w.put(n + B_PREV_SIZE, size)
        if not self.is_wild(b, size):
            self.file_free(b, size)

    def take(self, nb: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Allocate a block of ``nb`` bytes by best fit; its word index, or 0. A bin hit pops
        the bin's oldest block; larger requests and misses go to ``take_large``."""
        units: cython.Py_ssize_t = nb >> 4
        if units >= self.small_units:
            return self.take_large(nb)
        units = self.find_bin(units)
        if units < 0:
            return self.take_large(nb)
        b: cython.Py_ssize_t = self.words.signed[self.heads0 + units]
        size: cython.Py_ssize_t = units << 4
        self.check_free(b, size)
        self.bin_remove(b, units)
        self.hand_out(b, size)
        self.carve(b, size, nb, False)
        return b

    def take_large(self, nb: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Best fit from the tries, or the wild top when it is smaller or nothing else fits."""
        w: Words = self.words
        b: cython.Py_ssize_t = 0
        if w.signed[self.treemap] >> self.trie_class(nb):
            b = self.trie_best(nb)
        size: cython.Py_ssize_t = w.signed[b + B_SIZE] & SIZE_MASK if b else 0
        end: cython.Py_ssize_t = w.signed[self.end_word]
        if not w.signed[end + B_SIZE] & PREV_ALLOCATED:
            top_size: cython.Py_ssize_t = w.signed[end + B_PREV_SIZE]
            if top_size >= self.small_limit and nb <= top_size and (not b or top_size < size):
                top: cython.Py_ssize_t = end - (top_size >> 3)
                self.check_free(top, top_size)
                self.carve(top, top_size, nb, True)
                return top
        if b:
            self.check_free(b, size)
            self.trie_remove(b)
            self.hand_out(b, size)
            self.carve(b, size, nb, False)
        return b

    def block_usable(self, b: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """What the caller of block ``b`` (a word index) may write: its size less the 8-byte
        cost."""
        return (self.words.signed[b + B_SIZE] & SIZE_MASK) - PAYLOAD

    def offset_of(self, offset: object) -> cython.Py_ssize_t:
        """A caller's ``offset`` as a C offset; ``InvalidPointer`` when it cannot be one."""
        if type(offset) is not int:
            raise InvalidPointer(f"offset {offset!r} is not an int")
        if not 0 <= offset < MAX_REQUEST:
            raise InvalidPointer(f"offset {offset} is not a block of this best_fit region")
        return offset

    def live_block(self, offset: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The word index of the live block at ``offset``; ``InvalidPointer`` for anything
        else, before anything is written.

        Checks the block's header against both neighbours' tags, so a double free, an offset
        inside a block or past the end is refused.
        """
        w: Words = self.words
        end: cython.Py_ssize_t = w.signed[self.end_word]
        b: cython.Py_ssize_t = (offset >> 3) - 2
        if offset & FLAGS or not self._first <= b < end:
            raise InvalidPointer(f"offset {offset} is not a block of this best_fit region")
        flags: cython.Py_ssize_t = w.signed[b + B_SIZE]
        size: cython.Py_ssize_t = flags & SIZE_MASK
        n: cython.Py_ssize_t = b + (size >> 3)
        if (not flags & ALLOCATED or size < MIN_BLOCK or n > end
                or not w.signed[n + B_SIZE] & PREV_ALLOCATED):
            raise InvalidPointer(f"offset {offset} is not a live block (freed twice?)")
        if not flags & PREV_ALLOCATED:
            prev_size: cython.Py_ssize_t = w.signed[b + B_PREV_SIZE]
            p: cython.Py_ssize_t = b - (prev_size >> 3)
            if (prev_size < MIN_BLOCK or p < self._first
                    or w.signed[p + B_SIZE] != prev_size | PREV_ALLOCATED):
                raise InvalidPointer(f"offset {offset} is not a live block (bad boundary tag)")
        return b

    # -- public allocation API ---------------------------------------------------------------
    # The kernel_* methods are the C entry points (segalloc.kernel) of the hot paths; the
    # MemoryAlgorithm methods check the Python arguments and call them.
    def kernel_allocate(self, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Best fit: the smallest free block that holds ``size``, split at the front."""
        try:
            b: cython.Py_ssize_t = self.take(block_bytes(size))
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("best_fit", "allocate", exc) from exc
        return (b + 2) << 3 if b else NO_MEMORY

    def kernel_deallocate(self, offset: cython.Py_ssize_t) -> cython.int:
        """Free a live block, merged with its free neighbours, and file it; ``InvalidPointer``
        (nothing changed) for anything else."""
        try:
            b: cython.Py_ssize_t = self.live_block(offset)
            flags: cython.Py_ssize_t = self.words.signed[b + B_SIZE]
            self.release(b, flags & SIZE_MASK, not flags & PREV_ALLOCATED)
            return 0
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("best_fit", "deallocate", exc) from exc

    def allocate(self, size: int) -> int | None:
        """Best fit: the smallest free block that holds ``size``, split at the front."""
        offset = self.kernel_allocate(size) if size <= MAX_REQUEST else NO_MEMORY
        return offset if offset >= 0 else None

    def deallocate(self, offset: object) -> None:  # not int: Cython would raise TypeError
        """Free a live block, merged with its free neighbours, and file it; ``InvalidPointer``
        (nothing changed) for anything else."""
        self.kernel_deallocate(self.offset_of(offset))

    def usable_size(self, offset: object) -> int:  # a non-int is an InvalidPointer
        """The block's size less its 8-byte cost: what the caller may write from ``offset``."""
        try:
            return self.block_usable(self.live_block(self.offset_of(offset)))
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("best_fit", "usable_size", exc) from exc

    @damage_is_corruption
    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        """Best fit for a block that can hold an aligned one; the unused front (0 or at least
        a minimum block) and tail go back to the free structures. When no block is that large
        every free block is tried, so a fit is never missed (Boost doubles the request)."""
        if alignment <= ALIGN:
            return self.allocate(size)
        if size > MAX_REQUEST or alignment > MAX_REQUEST:
            return None
        nb: cython.Py_ssize_t = block_bytes(size)
        b: cython.Py_ssize_t = self.take(nb + alignment + 2 * ALIGN)
        if not b:
            b = self._take_aligned_anywhere(nb, alignment)
            if not b:
                return None
        size_b: cython.Py_ssize_t = self.words.signed[b + B_SIZE] & SIZE_MASK
        gap: cython.Py_ssize_t = self._front_gap(b, alignment)
        if gap:  # the front goes back (the block before b is allocated: b was free)
            a: cython.Py_ssize_t = b + (gap >> 3)
            self.words.put(a + B_SIZE, (size_b - gap) | ALLOCATED)
            self.release(b, gap, False)
            b = a
        self.split_off(b, nb)
        return (b + 2) << 3

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
        return self._take_whole(best, best_size) if best else 0

    def _take_largest(self, limit_size: int) -> int:
        """Allocate the whole largest free block if it holds ``limit_size`` (Boost's fallback
        for ``ALLOCATE_NEW``); its word index, or 0."""
        largest = largest_size = 0
        for offset, size in self.free_blocks():
            if size > largest_size:
                largest, largest_size = offset // WORD, size
        if not largest or largest_size - PAYLOAD < limit_size:
            return 0
        return self._take_whole(largest, largest_size)

    def _take_whole(self, b: cython.Py_ssize_t, size: cython.Py_ssize_t) -> int:
        """Allocate all of free block ``b``, found by a walk of the chain."""
        wild: cython.bint = self.is_wild(b, size)
        if not wild:
            self.unfile(b, size)
            self.hand_out(b, size)
        self.carve(b, size, size, wild)
        return b

    def split_off(self, b: cython.Py_ssize_t, keep: cython.Py_ssize_t) -> cython.bint:
        """Shrink allocated block ``b`` to ``keep`` bytes and free the tail; a tail too small
        for a block joins a free successor. False (nothing done) when there is no tail or it
        can go nowhere."""
        w: Words = self.words
        flags: cython.Py_ssize_t = w.signed[b + B_SIZE]
        size: cython.Py_ssize_t = flags & SIZE_MASK
        rest: cython.Py_ssize_t = size - keep
        tail: cython.Py_ssize_t = b + (keep >> 3)
        if rest >= MIN_BLOCK:
            w.put(b + B_SIZE, keep | (flags & FLAGS))
            self.release(tail, rest, False)
            return True
        n: cython.Py_ssize_t = b + (size >> 3)
        next_flags: cython.Py_ssize_t = w.signed[n + B_SIZE]
        if not rest or next_flags & ALLOCATED:
            return False
        next_size: cython.Py_ssize_t = next_flags & SIZE_MASK
        if not self.is_wild(n, next_size):
            self.unfile(n, next_size)
        merged: cython.Py_ssize_t = rest + next_size
        w.put(b + B_SIZE, keep | (flags & FLAGS))
        w.put(tail + B_SIZE, merged | PREV_ALLOCATED)
        w.put(tail + (merged >> 3), merged)
        w.put(self.free_word, w.signed[self.free_word] + rest)
        if not self.is_wild(tail, merged):
            self.file_free(tail, merged)
        return True

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        """Boost's ``allocation_command``; ``received_size`` is always the block's usable size
        (``kernel_command`` does the work)."""
        cmd: cython.Py_ssize_t = int(command)
        if not command_can_succeed(cmd, limit_size, preferred_size, reuse):
            return None, 0
        offset: cython.Py_ssize_t = self.kernel_command(
            cmd, min(limit_size, MAX_REQUEST + 1), min(preferred_size, MAX_REQUEST),
            -1 if reuse is None or not cmd & (SHRINKS | EXPAND) else self.offset_of(reuse))
        if offset < 0:
            return None, 0
        return offset, self.block_usable((offset >> 3) - 2)

    def kernel_command(self, flags: cython.Py_ssize_t, limit_size: cython.Py_ssize_t,
                       preferred_size: cython.Py_ssize_t,
                       reuse: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Boost's command, its arguments checked by the caller (``command_can_succeed``):
        shrinking keeps ``[preferred, limit]``; expansion tries forward, then backward (into a
        free predecessor, with the forward neighbour too when both are asked), before
        ``ALLOCATE_NEW``, which takes ``preferred`` if some block has it, else the largest
        block when that holds ``limit``. The block's offset, or ``NO_MEMORY``."""
        try:
            b: cython.Py_ssize_t = 0
            if flags & SHRINKS:  # limit is an upper bound: no usable size is above MAX_REQUEST
                b = self.shrink(self.live_block(reuse), min(limit_size, MAX_REQUEST),
                                min(preferred_size, MAX_REQUEST),
                                flags & TRY_SHRINK_IN_PLACE != 0)
                return (b + 2) << 3 if b else NO_MEMORY
            if reuse >= 0 and flags & EXPAND:
                b = self.live_block(reuse)
            if limit_size > MAX_REQUEST:  # a lower bound here: no block can hold it
                return NO_MEMORY
            preferred_size = min(preferred_size, MAX_REQUEST)
            if b:
                old: cython.Py_ssize_t = self.block_usable(b)
                grown: cython.Py_ssize_t = self.expand(b, flags, limit_size, preferred_size)
                if grown:
                    if flags & ZERO_MEMORY:
                        self._zero_new(grown, reuse, old)
                    return (grown + 2) << 3
            if flags & ALLOCATE_NEW:
                b = self.take(block_bytes(preferred_size))
                if not b:
                    b = self._take_largest(limit_size)
                if b:
                    offset: cython.Py_ssize_t = (b + 2) << 3
                    if flags & ZERO_MEMORY:
                        received = self.block_usable(b)
                        self._buf[offset: offset + received] = bytes(received)
                    return offset
            return NO_MEMORY
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("best_fit", "allocation_command", exc) from exc

    def _zero_new(self, b: int, old_offset: int, old_usable: int) -> None:
        """Zero what an expansion to block ``b`` added: the front taken backwards and the new
        tail."""
        offset = (b + 2) << 3
        received = self.block_usable(b)
        buf = self._buf
        buf[offset: old_offset] = bytes(old_offset - offset)
        old_end, new_end = old_offset + old_usable, offset + received
        if new_end > old_end:
            buf[old_end: new_end] = bytes(new_end - old_end)

    def shrink(self, b: cython.Py_ssize_t, limit: cython.Py_ssize_t,
               preferred: cython.Py_ssize_t, try_only: cython.bint) -> cython.Py_ssize_t:
        """Boost's ``shrink``: cut the block to ``preferred`` (a minimum block at least) and
        free the tail; a block already within ``[preferred, limit]`` is left as it is. ``b``,
        or 0 when the command fails."""
        usable: cython.Py_ssize_t = self.block_usable(b)
        keep: cython.Py_ssize_t = block_bytes(preferred)
        if usable >= preferred and keep - PAYLOAD <= limit:
            if self.split_off(b, keep) or usable <= limit:
                return b
        return b if try_only else 0

    def expand(self, b: cython.Py_ssize_t, cmd: cython.Py_ssize_t, limit: cython.Py_ssize_t,
               preferred: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Grow live block ``b`` in place to hold ``limit`` (``preferred`` if there is room),
        taking first from a free successor, then from the end of a free predecessor; the grown
        block's word index, or 0 when there is no room."""
        w: Words = self.words
        flags: cython.Py_ssize_t = w.signed[b + B_SIZE]
        size: cython.Py_ssize_t = flags & SIZE_MASK
        if size - PAYLOAD >= limit:
            return b
        n: cython.Py_ssize_t = b + (size >> 3)
        next_flags: cython.Py_ssize_t = w.signed[n + B_SIZE]
        fwd: cython.Py_ssize_t = 0
        bwd: cython.Py_ssize_t = 0
        if cmd & EXPAND_FWD and not next_flags & ALLOCATED:
            fwd = next_flags & SIZE_MASK
        if cmd & EXPAND_BWD and not flags & PREV_ALLOCATED:
            bwd = w.signed[b + B_PREV_SIZE]
        if size + fwd + bwd - PAYLOAD < limit:
            return 0
        # what to add (> 0: the block is below limit); forward first, where data need not move
        wanted: cython.Py_ssize_t = block_bytes(preferred) - size
        take_fwd: cython.Py_ssize_t = wanted if wanted < fwd else fwd
        if fwd - take_fwd < MIN_BLOCK:
            take_fwd = fwd
        take_bwd: cython.Py_ssize_t = wanted - take_fwd if wanted > take_fwd else 0
        if take_bwd > bwd or bwd - take_bwd < MIN_BLOCK:
            take_bwd = bwd
        prev_flag: cython.Py_ssize_t = flags & PREV_ALLOCATED
        if take_fwd:
            wild: cython.bint = self.is_wild(n, fwd)
            if not wild:
                self.unfile(n, fwd)
            self.carve(n, fwd, take_fwd, wild)
            w.put(n + B_SIZE, take_fwd)  # the absorbed header, now payload, reads "free"
        if take_bwd:
            p: cython.Py_ssize_t = b - (bwd >> 3)
            self.unfile(p, bwd)
            w.put(self.free_word, w.signed[self.free_word] - take_bwd)
            w.put(b + B_SIZE, size)  # the old header, now payload, reads "free"
            if take_bwd < bwd:
                w.put(p + B_SIZE, (bwd - take_bwd) | PREV_ALLOCATED)
                b = p + ((bwd - take_bwd) >> 3)
                w.put(b + B_PREV_SIZE, bwd - take_bwd)
                self.file_free(p, bwd - take_bwd)
                prev_flag = 0
            else:
                b = p
                prev_flag = PREV_ALLOCATED
        size += take_fwd + take_bwd
        w.put(b + B_SIZE, size | ALLOCATED | prev_flag)
        return b

    # -- region size -----------------------------------------------------------------------
    @damage_is_corruption
    def grow(self, extra: int) -> None:
        """Take in ``extra`` bytes appended to the region: the whole 16-byte units past the end
        marker (less the unaligned tail the region was made with) extend the top or become a
        new top. A gap too small for a block after an allocated last block waits past the end
        marker for the next ``grow`` (Boost moves its marker and leaves a block too small to
        be one)."""
        w, r, h = self.words, self.words.signed, self.control
        check_grow(extra, self._start + r[h + H_SIZE], len(self._buf))
        size = r[h + H_SIZE] + extra
        w.put(h + H_SIZE, size)
        end = r[self.end_word]
        gap = (self._start + size - (end * WORD + END_MARKER) - r[h + H_BASE_TAIL]) & SIZE_MASK
        last_free = not r[end + B_SIZE] & PREV_ALLOCATED
        if gap and (last_free or gap >= MIN_BLOCK):
            new_end = end + (gap >> 3)
            if last_free:
                top_size = r[end + B_PREV_SIZE]
                b, block_size = end - (top_size >> 3), top_size + gap
                if top_size < self.small_limit:
                    self.unfile(b, top_size)
            else:
                b, block_size = end, gap
            w.put(b + B_SIZE, block_size | PREV_ALLOCATED)
            w.put(new_end + B_PREV_SIZE, block_size)
            w.put(new_end + B_SIZE, ALLOCATED)
            w.put(self.end_word, new_end)
            w.put(self.free_word, r[self.free_word] + gap)
            if block_size < self.small_limit:
                self.file_free(b, block_size)

    @damage_is_corruption
    def shrink_to_fit(self) -> int:
        """Drop the top (all but a minimum block when nothing is allocated, as Boost keeps its
        "unique block") and the unused tail; return the new region size."""
        w, r = self.words, self.words.signed
        end = r[self.end_word]
        if not r[end + B_SIZE] & PREV_ALLOCATED:
            top_size = r[end + B_PREV_SIZE]
            top = end - (top_size >> 3)
            if top_size < self.small_limit:
                self.unfile(top, top_size)
            if top == self._first:
                end = top + MIN_BLOCK // WORD
                w.put(top + B_SIZE, MIN_BLOCK | PREV_ALLOCATED)
                w.put(end + B_PREV_SIZE, MIN_BLOCK)
                w.put(end + B_SIZE, ALLOCATED)
                w.put(self.free_word, r[self.free_word] - (top_size - MIN_BLOCK))
                self.file_free(top, MIN_BLOCK)
            else:
                end = top
                w.put(end + B_SIZE, BOTH_ALLOCATED)
                w.put(self.free_word, r[self.free_word] - top_size)
            w.put(self.end_word, end)
        size = end * WORD + END_MARKER - self._start
        w.put(self.control + H_SIZE, size)
        w.put(self.control + H_BASE_TAIL, 0)
        return size

    @property
    def size(self) -> int:
        """Region bytes from ``start``, the header included."""
        size: int = self.words.signed[self.control + H_SIZE]
        return size

    @property
    def free_memory(self) -> int:
        """Bytes in free blocks (what ``free_blocks`` lists)."""
        free: int = self.words.signed[self.free_word]
        return free

    # -- checks and introspection (cold paths) ---------------------------------------------
    def _blocks(self) -> Iterator[tuple[int, int, int]]:
        """``(block, size, flags)`` along the physical chain, its tags checked on the way.

        Bounded: every step advances by a minimum block at least and stops at the end marker.
        """
        r = self.words.signed
        end = r[self.end_word]
        b = self._first
        prev_free = False
        for _ in range((end - b) * WORD // MIN_BLOCK + 1):
            if b == end:
                if r[end + B_SIZE] != ALLOCATED | (0 if prev_free else PREV_ALLOCATED):
                    raise _fault(f"end marker at {end * WORD} is damaged")
                return
            flags = r[b + B_SIZE]
            size = flags & SIZE_MASK
            if size < MIN_BLOCK or b + (size >> 3) > end:
                raise _fault(f"block at {b * WORD} has an impossible size {size}")
            if bool(flags & PREV_ALLOCATED) == prev_free:
                raise _fault(f"block at {b * WORD} has a wrong previous-allocated bit")
            is_free = not flags & ALLOCATED
            if is_free and prev_free:
                raise _fault(f"free blocks at {b * WORD} and before it were not merged")
            if is_free and r[b + (size >> 3) + B_PREV_SIZE] != size:
                raise _fault(f"free block at {b * WORD} has a wrong boundary tag")
            yield b, size, flags
            prev_free = is_free
            b += size >> 3
        raise _fault("the block chain does not reach the end marker")

    @damage_is_corruption
    def verify(self) -> None:
        """Walk the block chain, then every bin and trie, and check that they agree."""
        r = self.words.signed
        end = r[self.end_word]
        if r[self.control + H_MAGIC] != MAGIC:
            raise _fault("bad magic")
        if not self._first + MIN_BLOCK // WORD <= end or end * WORD + END_MARKER + r[
                self.control + H_BASE_TAIL] > self._start + r[self.control + H_SIZE]:
            raise _fault(f"end marker {end * WORD} is outside the region")
        filed: dict[int, int] = {}
        total = top = 0
        for b, size, flags in self._blocks():
            if not flags & ALLOCATED:
                total += size
                if self.is_wild(b, size):
                    top = b
                else:
                    filed[b] = size
        if total != r[self.free_word]:
            raise _fault(f"free bytes {r[self.free_word]} but the free blocks hold {total}")
        budget = len(filed)
        for b, size in self._filed_blocks(budget):
            if filed.pop(b, None) != size:
                raise _fault(f"block at {b * WORD} is filed as free ({size}) but is not"
                             + (" (the top)" if b == top else ""))
        if filed:
            raise _fault(f"free block at {min(filed) * WORD} is in no bin or trie")

    def _list(self, head: int, budget: int) -> Iterator[int]:
        """The blocks of a circular list from ``head``, links checked; bounded by ``budget``."""
        r = self.words.signed
        b = head
        for _ in range(budget + 1):
            yield b
            nxt = r[b + B_NEXT]
            if nxt < self._first or r[nxt + B_PREV] != b:
                raise _fault(f"list link broken after block {b * WORD}")
            b = nxt
            if b == head:
                return
        raise _fault(f"the list at block {head * WORD} is longer than the free blocks")

    def _filed_blocks(self, budget: int) -> Iterator[tuple[int, int]]:
        """``(block, size)`` of every block in a bin or a trie; bitmaps checked; bounded."""
        r = self.words.signed
        summary = r[self.summary]
        for units in range(MIN_UNITS, self.small_units):
            head = r[self.heads0 + units]
            mapword = units >> 6
            marked = r[self.smallmap + mapword] >> (units & 63) & 1
            if bool(head) != bool(marked) or (marked and not summary >> mapword & 1):
                raise _fault(f"bitmap disagrees with bin {units}")
            if head:
                for b in self._list(head, budget):
                    yield b, units << 4
        for mapword in range((self.small_units + 63) // 64):
            if bool(r[self.smallmap + mapword]) != bool(summary >> mapword & 1):
                raise _fault(f"summary disagrees with bitmap word {mapword}")
        treemap = r[self.treemap]
        for cls in range(self.first_class, self.last_class + 1):
            root = r[self.roots0 + cls]
            if bool(root) != bool(treemap >> cls & 1):
                raise _fault(f"treemap disagrees with trie class {cls}")
            if root:
                yield from self._trie_blocks(cls, root, budget)

    def _trie_blocks(self, cls: int, root: int, budget: int) -> Iterator[tuple[int, int]]:
        """Every block of one trie (nodes and their same-size lists), its links checked."""
        r = self.words.signed
        low = 1 << (cls - 1)
        high = 1 << 64 if cls == self.last_class else 1 << cls
        pending = [(root, self.roots0 + cls)]
        for _ in range(budget + 1):
            if not pending:
                return
            node, parent = pending.pop()
            if node < self._first:
                raise _fault(f"trie of class {cls} links to word {node}")
            size = r[node + B_SIZE] & SIZE_MASK
            if r[node + B_PARENT] != parent or not low <= size < high:
                raise _fault(f"trie node at {node * WORD} is misplaced")
            for b in self._list(node, budget):
                if b != node and (r[b + B_PARENT] or r[b + B_SIZE] & SIZE_MASK != size):
                    raise _fault(f"block at {b * WORD} is misfiled under {node * WORD}")
                yield b, size
            pending += [(child, node) for child in (r[node + B_CHILD0], r[node + B_CHILD1])
                        if child]
        raise _fault(f"trie of class {cls} has more nodes than there are free blocks")

    def all_memory_deallocated(self) -> bool:
        """True when the free blocks cover every byte between the header and the end marker."""
        r = self.words.signed
        return bool(r[self.free_word] == (r[self.end_word] - self._first) * WORD)

    @damage_is_corruption
    def zero_free_memory(self) -> None:
        """Zero every free byte but the headers, links and boundary tags."""
        buf = self._buf
        for b, size, flags in list(self._blocks()):
            if flags & ALLOCATED:
                continue
            if self.is_wild(b, size):
                links = 0
            else:
                links = BIN_LINKS if size >> 4 < self.small_units else TRIE_LINKS
            start = (b + B_NEXT + links) * WORD
            stop = (b + (size >> 3)) * WORD
            buf[start:stop] = bytes(stop - start)

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(block offset, size)`` of every free block, in address order."""
        for b, size, flags in self._blocks():
            if not flags & ALLOCATED:
                yield b * WORD, size

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, usable size)`` of every live block, in address order."""
        for b, size, flags in self._blocks():
            if flags & ALLOCATED:
                yield (b + 2) * WORD, size - PAYLOAD


class BestFit(_BestFit, MemoryAlgorithm):
    """Best fit with boundary tags, Boost's ``rbtree_best_fit`` arithmetic, all in the buffer.

    The instance holds the buffer views, the start and constants fixed at ``format`` (read
    back by ``attach``); every mutable word lives in the segment.
    """

    name = "best_fit"
    layout_version = LAYOUT_VERSION
    ALIGNMENT = ALIGN
    PAYLOAD_PER_ALLOCATION = PAYLOAD
    MIN_SEGMENT_SIZE = MIN_SEGMENT_SIZE

    @classmethod
    def format(cls, buf: memoryview, start: int, size: int) -> BestFit:
        """Lay out an empty region: the header, one free block (the top) and the end marker."""
        check_region(len(buf), start, size, alignment=ALIGN, min_size=MIN_SEGMENT_SIZE)
        per_unit = size // REGION_BYTES_PER_SMALL_UNIT
        small_units = max(MIN_SMALL_UNITS,
                          min(MAX_SMALL_UNITS, 1 << max(per_unit.bit_length() - 1, 0)))
        last_class = max((small_units * ALIGN).bit_length(), size.bit_length())
        first = _first_block(start, small_units, last_class)
        end = (start + size) // ALIGN * ALIGN // WORD - END_MARKER // WORD
        if end - first < MIN_BLOCK // WORD:
            raise ValueError(f"size={size} leaves no room for a block after the header")
        view = memoryview(buf).cast("B")
        header = [0] * _header_words(small_units, last_class)
        header[H_MAGIC], header[H_SIZE], header[H_END] = MAGIC, size, end
        header[H_SMALL_UNITS], header[H_LAST_CLASS] = small_units, last_class
        header[H_BASE_TAIL] = start + size - (end * WORD + END_MARKER)
        view[start: start + len(header) * WORD] = b"".join(
            word.to_bytes(WORD, "little") for word in header)
        alg: _BestFit = cls(view, start)
        top = (end - first) * WORD
        w = alg.words
        w.put(alg.free_word, top)
        w.put(first + B_SIZE, top | PREV_ALLOCATED)
        w.put(end + B_PREV_SIZE, top)
        w.put(end + B_SIZE, ALLOCATED)
        if top < alg.small_limit:
            alg.file_free(first, top)
        return alg  # type: ignore[return-value]

    @classmethod
    def attach(cls, buf: memoryview, start: int) -> BestFit:
        """Bind to a formatted region; ``SegmentCorrupt`` when its header is not sane."""
        view = memoryview(buf).cast("B")
        if start % ALIGN or start < 0 or start + MIN_SEGMENT_SIZE > len(view):
            raise _fault(f"no region fits at start={start} in {len(view)} bytes")
        head = bytes(view[start: start + H_SMALLMAP * WORD])
        fields = [int.from_bytes(head[i: i + WORD], "little") for i in range(0, len(head), WORD)]
        if fields[H_MAGIC] != MAGIC:
            raise _fault("bad magic: the region was not formatted by best_fit (layout 1)")
        small_units, last_class = fields[H_SMALL_UNITS], fields[H_LAST_CLASS]
        if (small_units not in {1 << k for k in range(3, 11)}
                or not (small_units * ALIGN).bit_length() <= last_class <= TOP_BIT):
            raise _fault(f"absurd bin parameters {small_units}/{last_class}")
        size, end, base_tail = fields[H_SIZE], fields[H_END], fields[H_BASE_TAIL]
        first = _first_block(start, small_units, last_class)
        if (start + size > len(view) or end - first < MIN_BLOCK // WORD or end % 2
                or end * WORD + END_MARKER + base_tail > start + size
                or base_tail >= ALIGN):
            raise _fault(f"region size {size} / end marker {end * WORD} do not fit the buffer")
        return cls(view, start)


# ------------------------------------------------------------------------------------------
# Plugin registration
# ------------------------------------------------------------------------------------------


@compiled_hookimpl
def segalloc_register_algorithms(register: Callable[[type[MemoryAlgorithm]], None]) -> None:
    """Register ``BestFit`` under the name ``best_fit``."""
    register(BestFit)
