"""Two-Level Segregated Fit (TLSF; Masmano, Ripoll, Crespo, Real, 2004), kept inside the segment.

Free blocks sit in segregated lists indexed by a first level (the power of two of the block's
span) and a second level (``SL_COUNT`` linear subdivisions of that power of two). One first-level
bitmap and one second-level bitmap per first level say which lists are non-empty, so
``allocate`` finds a list in O(1) with bit operations: the request is rounded up to the next
list so that any block found fits (good fit, no search), the block is split, and ``deallocate``
coalesces at once with both physical neighbours through boundary tags. Modelled on
mattconte/tlsf, written afresh for a word view of a Python buffer.

Reading order (tlsf.c's): constants, in-segment layout, mapping, the free-list and block
helpers, the public operations chaining them, introspection, checks.

One source, two builds: Cython compiles this module in its pure-Python mode (the C types come
from the annotations and ``segregated_fit.pxd``; the helpers become C functions the compiler
inlines); with ``SEGALLOC_PURE_PYTHON=1`` the same code runs interpreted. Words are read
through the signed view (``Words.signed``) and written through ``Words.store``, so a journaled
segment logs every write and a hostile word cannot wrap C arithmetic around.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import cython

from segalloc.algorithm_common import (
    ALLOCATE_NEW,
    DAMAGE,
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
from segalloc.walks import LinkWalk
from segalloc.words import Words, word_view

if not cython.compiled:  # compiled, the C forms come from intrinsics.pxd
    from segalloc.intrinsics import bit_length, lowest_bit

__all__ = ["SegregatedFit"]

# ------------------------------------------------------------------------------------------
# Constants
# ------------------------------------------------------------------------------------------
#: log2 of the second-level lists per power of two (tunable, 4 or 5). 4 keeps the good-fit
#: rounding under 1/16 of a block and a row bitmap in one small int; 5 halves the rounding.
SL_LOG2 = 4
SL_COUNT = 1 << SL_LOG2
SL_MASK = SL_COUNT - 1
#: log2 of ALIGNMENT (fixed: every span is a multiple of 16 so payloads stay 16-aligned)
ALIGN_LOG2 = 4
ALIGN = 1 << ALIGN_LOG2
WORD = 8
#: spans below this have one exact list per ALIGN bytes (first-level row 0)
SMALL_SPAN = 1 << (SL_LOG2 + ALIGN_LOG2)
#: larger spans: ``shift = span.bit_length() - MAP_BITS`` keeps SL_LOG2 bits below the top one
MAP_BITS = SL_LOG2 + 1
#: header + next + prev + footer: the smallest span a free block can have
MIN_SPAN = 4 * WORD
#: the first-level bitmap is one word
MAX_ROWS = 48

assert SMALL_SPAN == SL_COUNT * ALIGN, "row 0 holds one exact list per ALIGN bytes"
assert 4 <= SL_LOG2 <= 5, "16 or 32 second-level lists a row"

# ------------------------------------------------------------------------------------------
# In-segment layout (word indexes: byte offsets from the segment start / 8)
# ------------------------------------------------------------------------------------------
# Control block at c = start / 8:
#
#   c+0  MAGIC          b"TLSF" and the layout version
#   c+1  SIZE           region bytes (what ``size`` reports)
#   c+2  FREE_BYTES     sum of the spans of the free blocks (``free_memory``)
#   c+3  END            word index of the end sentinel's header
#   c+4  ROWS           first-level rows of the list table (fixed at format)
#   c+5  TOP            word index of the wilderness header (0: the last block is live);
#                       derivable from END's P bit and the footer before it, but stored: it
#                       spares three reads on the path most allocations of a growing heap take
#   c+6  FL_BITMAP      bit fl set <=> SL_BITMAP[fl] is not zero
#   c+7 ...             SL_BITMAP[fl], ROWS words: bit sl set <=> list fl * SL_COUNT + sl not empty
#   c+7+ROWS ...        HEAD[index], ROWS * SL_COUNT words: first block of each list (0: empty)
#   first block header: the first odd word after the heads
#
# The table is sized at format for twice the region (at most 1/8 of it) and never moves. The
# last list also takes every larger span, so a segment grown far past its table still works:
# only requests beyond the table's range search that one list (bounded, first fit).
#
# Block header: one word at an odd word index h, so that the payload at byte 8*h + 8 is
# 16-aligned:
#
#    63                                          4   3   2   1   0
#   +----------------------------------------------+---+---+---+---+
#   |         span (bytes, multiple of 16)          | E | L | P | F |
#   +----------------------------------------------+---+---+---+---+
#   span   bytes from this header to the next one; a live block's usable size is span - 8
#   F      this block is free
#   P      the previous physical block is free, and the word before h is its footer
#   L      this block is live (allocated): a live header reads L among F, L, E
#   E      the end sentinel (span 0), never a block
#
# Free block:       h: header = span | F      h+1: NEXT      h+2: PREV      ...
#                   h+span/8-1: FOOTER = span (the prev-size tag the next block reads)
#                   NEXT / PREV: the next and previous blocks of the list (0: none).
# Wilderness:       the free block just before the end sentinel, if any (dlmalloc's "top"),
#                   at TOP. It is in no list (NEXT / PREV unused): allocate takes from its
#                   front only when no list can serve, and a block before it grows into it
#                   without list work.
# Allocated block:  h: header = span | L | P  h+1 ... h+span/8-1: payload. The footer word is
#                   payload while the block is live (borrowed, as in tlsf.c): 8 bytes a block.
# End sentinel:     END: header = E | P (P when the last block is free)
#
# Every stale word a block leaves behind reads as "not live": a header absorbed into a free
# neighbour keeps (or is given) F, a footer and a zero lack L, a link is odd (F) or 0, a header
# left inside a block grown backward is zeroed. So a double free is refused whatever happened
# to the memory since, unless the caller's own data wrote a live-looking header over it.
#
# Invariants: no two free blocks are neighbours; each free block but the wilderness is in the
# list its span maps to; TOP is the wilderness (0 when the sentinel's P bit is clear); the
# bitmaps mark exactly the non-empty lists; FREE_BYTES is the sum of the free spans (the
# wilderness included).
MAGIC = int.from_bytes(b"TLSF\0\0\0\0", "little")
LAYOUT_VERSION = 2
C_MAGIC, C_SIZE, C_FREE, C_END, C_ROWS, C_TOP, C_FL_BITMAP = range(7)
CONTROL_WORDS = 7
NEXT, PREV = 1, 2
FREE_BIT, PREV_FREE_BIT, LIVE_BIT, END_BIT = 1, 2, 4, 8
FLAG_BITS = 15
SENTINEL = END_BIT
#: of these, a live block's header has LIVE_BIT only
LIVE_MASK = FREE_BIT | LIVE_BIT | END_BIT

# Compound constants
SPAN_ROUNDING = WORD + ALIGN - 1  #: span = (size + SPAN_ROUNDING) & SPAN_MASK
SPAN_MASK = -ALIGN
ALIGN_MASK = ALIGN - 1
ROW_BIAS = ALIGN_LOG2 << SL_LOG2  #: list index = (shift << SL_LOG2) - ROW_BIAS + top bits
NOT_PREV_FREE = ~PREV_FREE_BIT


# ------------------------------------------------------------------------------------------
# Mapping (tlsf.c's mapping_insert / mapping_search)
# ------------------------------------------------------------------------------------------
def span_for(size: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """The block span serving ``size`` payload bytes: header word added, 16-aligned, >= 32."""
    span = (size + SPAN_ROUNDING) & SPAN_MASK
    return span if span > MIN_SPAN else MIN_SPAN


def list_index(span: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """The list a free block of ``span`` bytes belongs to (before clamping to the table)."""
    if span < SMALL_SPAN:
        return span >> ALIGN_LOG2
    shift: cython.Py_ssize_t = bit_length(span) - MAP_BITS
    return (shift << SL_LOG2) - ROW_BIAS + (span >> shift)


def search_index(span: cython.Py_ssize_t) -> cython.Py_ssize_t:
    """The first list whose every block has at least ``span`` bytes (good fit)."""
    if span < SMALL_SPAN:
        return span >> ALIGN_LOG2
    shift: cython.Py_ssize_t = bit_length(span) - MAP_BITS
    return (shift << SL_LOG2) - ROW_BIAS + ((span + (1 << shift) - 1) >> shift)


def rows_for(region_size: int) -> int:
    """First-level rows for a region: every span up to twice its size, at most 1/8 of it."""
    wanted = (list_index(2 * region_size) >> SL_LOG2) + 1
    affordable = region_size // (8 * WORD) // (SL_COUNT + 1)
    return max(1, min(wanted, affordable, MAX_ROWS))


def _first_block(control: int, rows: int) -> int:
    """Word index of the first block header: the first odd word after the list heads."""
    return (control + CONTROL_WORDS + rows + rows * SL_COUNT) | 1


def _last_sentinel_word(region_end: int) -> int:
    """The highest odd word whose header ends by ``region_end`` (bytes)."""
    last = region_end // WORD - 1
    return last if last % 2 else last - 1


#: the layout constants as Python values, for tests and inspection tools (compiled, the module's
#: constants are C values, not module attributes)
LAYOUT = SimpleNamespace(ALIGN=ALIGN, SL_COUNT=SL_COUNT, NEXT=NEXT, PREV=PREV, FREE_BIT=FREE_BIT,
                         PREV_FREE_BIT=PREV_FREE_BIT, LIVE_BIT=LIVE_BIT, MIN_SPAN=MIN_SPAN)

#: control + one table row + a minimal free block + the sentinel + alignment slack
MIN_SEGMENT_SIZE = (CONTROL_WORDS + 1 + SL_COUNT + 1) * WORD + MIN_SPAN + 3 * WORD
#: requests beyond this cannot be served by any region (and keep the arithmetic in 63 bits)
MAX_REQUEST = 1 << 60


@cython.cclass
class _Tlsf(AlgorithmKernel):
    """The block helpers and operations over the region's words (a C type when compiled).

    Fields are layout constants read at binding (ROWS never changes after format); every
    state word is read from ``words`` on each call."""

    def __init__(self, buf: memoryview, start: int) -> None:
        byte_view = memoryview(buf).cast("B")
        self._buf = byte_view
        self.words = Words(byte_view)
        self._start = start
        control = start // WORD
        self.control = control
        self.end_word = control + C_END
        self.free_word = control + C_FREE
        self.top_word = control + C_TOP
        self.fl_map = control + C_FL_BITMAP
        self.row_maps = self.fl_map + 1
        rows = self.words.signed[control + C_ROWS] if control + C_ROWS < len(self.words) else 0
        if not 1 <= rows <= MAX_ROWS:
            rows = 0  # absurd: bind without a table (``check_control`` refuses the region)
        self.rows = rows
        self.heads = control + CONTROL_WORDS + rows
        self.max_index = rows * SL_COUNT - 1
        self.first = _first_block(control, rows)

    # -- free lists (tlsf.c's insert_free_block / remove_free_block) -----------------------
    def list_of(self, span: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The list a free block of ``span`` bytes lives in (the last takes every larger)."""
        index: cython.Py_ssize_t = list_index(span)
        return index if index < self.max_index else self.max_index

    def insert_free(self, h: cython.Py_ssize_t, index: cython.Py_ssize_t) -> cython.void:
        """Put free block ``h`` at the head of list ``index``, setting the bitmaps' bits."""
        w: Words = self.words
        slot: cython.Py_ssize_t = self.heads + index
        first: cython.Py_ssize_t = w.signed[slot]
        w.put(h + NEXT, first)
        w.put(h + PREV, 0)
        if first:
            w.put(first + PREV, h)
        else:
            row: cython.Py_ssize_t = self.row_maps + (index >> SL_LOG2)
            w.put(row, w.signed[row] | (1 << (index & SL_MASK)))
            w.put(self.fl_map, w.signed[self.fl_map] | (1 << (index >> SL_LOG2)))
        w.put(slot, h)

    def remove_free(self, h: cython.Py_ssize_t, index: cython.Py_ssize_t) -> cython.void:
        """Bypass free block ``h`` in list ``index`` (the bitmaps follow when it empties)."""
        w: Words = self.words
        nxt: cython.Py_ssize_t = w.signed[h + NEXT]
        prv: cython.Py_ssize_t = w.signed[h + PREV]
        if prv:
            w.put(prv + NEXT, nxt)
        else:
            w.put(self.heads + index, nxt)
            if not nxt:
                row: cython.Py_ssize_t = self.row_maps + (index >> SL_LOG2)
                row_map: cython.Py_ssize_t = w.signed[row] & ~(1 << (index & SL_MASK))
                w.put(row, row_map)
                if not row_map:
                    w.put(self.fl_map, w.signed[self.fl_map] & ~(1 << (index >> SL_LOG2)))
        if nxt:
            w.put(nxt + PREV, prv)

    def find_list(self, index: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The first non-empty list at ``index`` or after it, by the bitmaps; -1 if none
        (tlsf.c's search_suitable_block)."""
        w: Words = self.words
        fl: cython.Py_ssize_t = index >> SL_LOG2
        row_map: cython.Py_ssize_t = w.signed[self.row_maps + fl] & (-1 << (index & SL_MASK))
        if not row_map:
            fl_map: cython.Py_ssize_t = w.signed[self.fl_map] & (-1 << (fl + 1))
            if not fl_map:
                return -1
            fl = lowest_bit(fl_map)
            row_map = w.signed[self.row_maps + fl]
            if not row_map:
                raise SegmentCorrupt(f"the first-level bitmap marks the empty row {fl}")
        return (fl << SL_LOG2) + lowest_bit(row_map)

    # -- free blocks: made, taken -------------------------------------------------------
    def make_free(self, h: cython.Py_ssize_t, span: cython.Py_ssize_t) -> cython.void:
        """Make ``[h, h+span)`` a free block: at the head of its list, or the wilderness when
        it touches the end sentinel (its neighbours are not free)."""
        w: Words = self.words
        w.put(h, span | FREE_BIT)
        w.put(h + (span >> 3) - 1, span)
        w.put(self.free_word, w.signed[self.free_word] + span)
        if h + (span >> 3) == w.signed[self.end_word]:
            w.put(self.top_word, h)
        else:
            self.insert_free(h, self.list_of(span))

    def take_free(self, h: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Take free block ``h`` out of its list (the wilderness is in none); its span."""
        w: Words = self.words
        span: cython.Py_ssize_t = w.signed[h] & SPAN_MASK
        if h == w.signed[self.top_word]:
            w.put(self.top_word, 0)
        else:
            self.remove_free(h, self.list_of(span))
        w.put(self.free_word, w.signed[self.free_word] - span)
        return span

    def release(self, h: cython.Py_ssize_t, span: cython.Py_ssize_t,
                prev_free: cython.bint) -> cython.void:
        """Free ``[h, h+span)``, merging with free neighbours (tlsf.c's merge_prev /
        merge_next around block_insert)."""
        w: Words = self.words
        n: cython.Py_ssize_t = h + (span >> 3)
        next_header: cython.Py_ssize_t = w.signed[n]
        if next_header & FREE_BIT:
            span += self.take_free(n)
        else:
            w.put(n, next_header | PREV_FREE_BIT)
        if prev_free:
            p: cython.Py_ssize_t = h - (w.signed[h - 1] >> 3)
            span += self.take_free(p)
            h = p
        self.make_free(h, span)

    def use_free(self, h: cython.Py_ssize_t, found: cython.Py_ssize_t,
                 span: cython.Py_ssize_t) -> cython.void:
        """Make the free block ``h`` of ``found`` bytes, just taken out of its list, a live
        block of ``span`` bytes; a rest that can be a block stays free (tlsf.c's
        block_prepare_used: trim the free block, then mark it used). The words it kept that
        become payload (links, footer) are zeroed: after ``zero_free_memory`` every block
        allocated from free memory reads all zeros, as Boost's allocators clear their
        free-tree hook."""
        w: Words = self.words
        w.put(h + NEXT, 0)
        w.put(h + PREV, 0)
        rest: cython.Py_ssize_t = found - span
        if rest >= MIN_SPAN:
            w.put(h, span | LIVE_BIT)
            self.make_free(h + (span >> 3), rest)  # (the next block's P bit stays set)
        else:
            n: cython.Py_ssize_t = h + (found >> 3)
            w.put(n - 1, 0)
            w.put(h, found | LIVE_BIT)
            w.put(n, w.signed[n] & NOT_PREV_FREE)

    def trim(self, h: cython.Py_ssize_t, new_span: cython.Py_ssize_t) -> cython.bint:
        """Give back the tail of live block ``h`` past ``new_span`` (tlsf.c's
        block_trim_used); False if the tail is too small to be a block of its own."""
        w: Words = self.words
        header: cython.Py_ssize_t = w.signed[h]
        span: cython.Py_ssize_t = header & SPAN_MASK
        rest: cython.Py_ssize_t = span - new_span
        if rest == 0:
            return True
        if rest < MIN_SPAN and not w.signed[h + (span >> 3)] & FREE_BIT:
            return False
        w.put(h, new_span | (header & FLAG_BITS))
        self.release(h + (new_span >> 3), rest, False)
        return True

    def give_front(self, h: cython.Py_ssize_t, taken: cython.Py_ssize_t) -> cython.void:
        """Hand the first ``taken`` bytes of free block ``h`` to the live block before it;
        the rest (at least MIN_SPAN) stays free."""
        span: cython.Py_ssize_t = self.take_free(h)
        self.make_free(h + (taken >> 3), span - taken)

    def live_header(self, offset: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The header word index of the live block at ``offset``; ``InvalidPointer`` otherwise.

        All checks come before any write, so a bad offset changes nothing and a block freed
        twice already reads "free": the header is a live block's, its span stays in the region,
        the next block does not think it free, and a free previous block agrees with the
        footer before the header."""
        w: Words = self.words
        h: cython.Py_ssize_t = (offset >> 3) - 1
        end: cython.Py_ssize_t = w.signed[self.end_word]
        if offset & ALIGN_MASK or h < self.first or h >= end:
            raise InvalidPointer(f"offset {offset} is not a block of this segment")
        header: cython.Py_ssize_t = w.signed[h]
        span: cython.Py_ssize_t = header & SPAN_MASK
        n: cython.Py_ssize_t = h + (span >> 3)
        if header & LIVE_MASK != LIVE_BIT or span < MIN_SPAN or n > end or w.signed[n] & PREV_FREE_BIT:
            raise InvalidPointer(f"offset {offset} is not a live block")
        if header & PREV_FREE_BIT:
            prev_span: cython.Py_ssize_t = w.signed[h - 1]
            p: cython.Py_ssize_t = h - (prev_span >> 3)
            if prev_span < MIN_SPAN or p < self.first or w.signed[p] != prev_span | FREE_BIT:
                raise InvalidPointer(f"offset {offset} is not a live block")
        return h

    def free_block_at(self, h: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The span of free block ``h`` found through a list or TOP; ``SegmentCorrupt`` if its
        header does not say free."""
        found: cython.Py_ssize_t = self.words.signed[h] - FREE_BIT
        if found & FLAG_BITS or found < MIN_SPAN:
            raise SegmentCorrupt(f"word {h}, reached as a free block, is not one")
        return found

    # -- the allocation interface (tlsf.c's tlsf_malloc / tlsf_free) --------------------
    # The kernel_* methods are the C entry points (segalloc.kernel); the MemoryAlgorithm
    # methods check the Python arguments and call them.
    def kernel_allocate(self, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Good fit in O(1): round up to the next list, take its head, split off the rest;
        the wilderness's front when no list serves."""
        try:
            span: cython.Py_ssize_t = span_for(size)
            index: cython.Py_ssize_t = search_index(span)
            if index > self.max_index:
                return self.take_oversized(span)
            index = self.find_list(index)
            h: cython.Py_ssize_t = self.words.signed[
                self.heads + index if index >= 0 else self.top_word]
            if not h:
                if index >= 0:
                    raise SegmentCorrupt(f"the bitmaps mark the empty list {index}")
                return NO_MEMORY
            found: cython.Py_ssize_t = self.free_block_at(h)
            if found < span:  # (only the wilderness can be too small: a list's blocks fit)
                return NO_MEMORY
            self.take_free(h)
            self.use_free(h, found, span)
            return (h << 3) + WORD
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("segregated_fit", "allocate", exc) from exc

    def kernel_deallocate(self, offset: cython.Py_ssize_t) -> cython.int:
        """Free a live block and merge it with its free neighbours through the boundary tags."""
        try:
            h: cython.Py_ssize_t = self.live_header(offset)
            header: cython.Py_ssize_t = self.words.signed[h]
            if header & PREV_FREE_BIT:  # the old header inside the merged block reads "free"
                self.words.put(h, header | FREE_BIT)
            self.release(h, header & SPAN_MASK, header & PREV_FREE_BIT != 0)
            return 0
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("segregated_fit", "deallocate", exc) from exc

    def kernel_allocate_aligned(self, size: cython.Py_ssize_t,
                                alignment: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Over-allocate, then give the front gap and the tail back to the lists."""
        if alignment <= ALIGN:
            return self.kernel_allocate(size)
        try:
            span: cython.Py_ssize_t = span_for(size)
            offset: cython.Py_ssize_t = self.kernel_allocate(span + alignment + ALIGN)
            if offset < 0:
                return NO_MEMORY
            if offset % alignment:
                aligned: cython.Py_ssize_t = (offset + MIN_SPAN + alignment - 1) & -alignment
                h: cython.Py_ssize_t = (offset >> 3) - 1
                gap: cython.Py_ssize_t = aligned - offset
                whole: cython.Py_ssize_t = self.words.signed[h] & SPAN_MASK
                # the block came from a free list, so the block before it is not free
                self.words.put(h + (gap >> 3), (whole - gap) | LIVE_BIT)
                self.release(h, gap, False)
                offset = aligned
            self.trim((offset >> 3) - 1, span)
            return offset
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("segregated_fit", "allocate_aligned", exc) from exc

    def kernel_command(self, flags: cython.Py_ssize_t, limit_size: cython.Py_ssize_t,
                       preferred_size: cython.Py_ssize_t,
                       reuse: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Boost's command (its arguments checked by the caller, as ``command_can_succeed``
        does): expand forward / backward or shrink in place, else allocate new."""
        try:
            if reuse >= 0 and flags & (EXPAND_FWD | EXPAND_BWD | SHRINKS):
                h: cython.Py_ssize_t = self.live_header(reuse)
                if flags & SHRINKS:
                    return self.shrink(flags, h, limit_size, preferred_size)
                done: cython.Py_ssize_t = self.expand(flags, h, span_for(limit_size),
                                                      span_for(preferred_size))
                if done >= 0:
                    return done
            if not flags & ALLOCATE_NEW:
                return NO_MEMORY
            offset: cython.Py_ssize_t = self.kernel_allocate(preferred_size)
            if offset < 0:
                offset = self.kernel_allocate(limit_size)
                if offset < 0:
                    return NO_MEMORY
            if flags & ZERO_MEMORY:
                self.zero(offset, offset + self.usable(offset))
            return offset
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged("segregated_fit", "allocation_command", exc) from exc

    def allocate(self, size: int) -> int | None:
        """A block of at least ``size`` bytes, or None."""
        offset = self.kernel_allocate(size) if size <= MAX_REQUEST else NO_MEMORY
        return offset if offset >= 0 else None

    def deallocate(self, offset: int) -> None:
        """Free the live block at ``offset``; ``InvalidPointer`` when it is none."""
        if not 0 <= offset <= MAX_REQUEST:
            raise InvalidPointer(f"offset {offset} is not a block of this segment")
        self.kernel_deallocate(offset)

    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        """A block of at least ``size`` bytes at a multiple of ``alignment``, or None."""
        if size > MAX_REQUEST or alignment > MAX_REQUEST:
            return None
        offset = self.kernel_allocate_aligned(size, alignment)
        return offset if offset >= 0 else None

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        """Boost's ``allocation_command``: ``(offset, usable size)`` or ``(None, 0)``."""
        flags = int(command)
        if not command_can_succeed(flags, limit_size, preferred_size, reuse):
            return None, 0
        if reuse is not None and not 0 <= reuse <= MAX_REQUEST:
            raise InvalidPointer(f"offset {reuse} is not a block of this segment")
        if limit_size > MAX_REQUEST:
            return None, 0
        offset = self.kernel_command(flags, limit_size, min(preferred_size, MAX_REQUEST),
                                     -1 if reuse is None else reuse)
        return (offset, self.usable(offset)) if offset >= 0 else (None, 0)

    def usable(self, offset: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The usable size of the block at ``offset`` (known to be live)."""
        return (self.words.signed[(offset >> 3) - 1] & SPAN_MASK) - WORD

    def take_oversized(self, span: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """First fit in the last list, then the wilderness, for spans beyond the table's range
        (grown segments)."""
        w: Words = self.words
        h: cython.Py_ssize_t = w.signed[self.heads + self.max_index]
        walk = LinkWalk(self.block_bound(), "segregated_fit: the last free list",
                        "the blocks the region can hold")
        while True:
            walk.step(h)
            if not h:
                h = w.signed[self.top_word]
                if not h or self.free_block_at(h) < span:
                    return NO_MEMORY
            found: cython.Py_ssize_t = self.free_block_at(h)
            if found >= span:
                self.take_free(h)
                self.use_free(h, found, span)
                return (h << 3) + WORD
            h = w.signed[h + NEXT]

    def block_bound(self) -> int:
        """No walk visits more blocks than fit in the region."""
        return (self.words.signed[self.end_word] - self.first) // (MIN_SPAN // WORD) + 1

    def take_next(self, h: cython.Py_ssize_t, wanted: cython.Py_ssize_t) -> cython.void:
        """Grow live block ``h`` into its free successor, up to a span of ``wanted`` (all of
        the successor when the rest would be too small to stay a block)."""
        w: Words = self.words
        header: cython.Py_ssize_t = w.signed[h]
        span: cython.Py_ssize_t = header & SPAN_MASK
        n: cython.Py_ssize_t = h + (span >> 3)
        next_span: cython.Py_ssize_t = w.signed[n] & SPAN_MASK
        taken: cython.Py_ssize_t = min(wanted - span, next_span)
        if next_span - taken >= MIN_SPAN:
            self.give_front(n, taken)
            w.put(h, (span + taken) | (header & FLAG_BITS))
        else:
            self.take_free(n)
            w.put(h, (span + next_span) | (header & FLAG_BITS))
            w.put(n + (next_span >> 3), w.signed[n + (next_span >> 3)] & NOT_PREV_FREE)

    def shrink(self, flags: cython.Py_ssize_t, h: cython.Py_ssize_t,
               limit_size: cython.Py_ssize_t, preferred_size: cython.Py_ssize_t
               ) -> cython.Py_ssize_t:
        """SHRINK_IN_PLACE / TRY_SHRINK_IN_PLACE to a usable size in [preferred, limit]."""
        offset: cython.Py_ssize_t = (h << 3) + WORD
        usable: cython.Py_ssize_t = (self.words.signed[h] & SPAN_MASK) - WORD
        if usable < preferred_size:
            return NO_MEMORY
        new_span: cython.Py_ssize_t = span_for(preferred_size)
        if new_span - WORD <= limit_size and self.trim(h, new_span):
            return offset
        if usable <= limit_size or flags & TRY_SHRINK_IN_PLACE:
            return offset
        return NO_MEMORY

    def expand(self, flags: cython.Py_ssize_t, h: cython.Py_ssize_t, least: cython.Py_ssize_t,
               wanted: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Grow live block ``h`` in place to a span of ``wanted`` bytes, ``least`` at worst.

        Forward first (the offset stays); then backward into a free previous block, taking
        only what is needed from its end, so its front stays free.
        """
        w: Words = self.words
        header: cython.Py_ssize_t = w.signed[h]
        span: cython.Py_ssize_t = header & SPAN_MASK
        old_end: cython.Py_ssize_t = (h << 3) + span
        if span >= wanted:
            return (h << 3) + WORD
        n: cython.Py_ssize_t = h + (span >> 3)
        next_header: cython.Py_ssize_t = w.signed[n]
        next_span: cython.Py_ssize_t = 0
        if flags & EXPAND_FWD and next_header & FREE_BIT:
            next_span = next_header & SPAN_MASK
        if span + next_span >= least:
            if next_span:
                self.take_next(h, wanted)
            return self.expanded(flags, h, h, old_end)
        if not (flags & EXPAND_BWD and header & PREV_FREE_BIT):
            return NO_MEMORY
        prev_span: cython.Py_ssize_t = w.signed[h - 1]
        if span + next_span + prev_span < least:
            return NO_MEMORY
        if next_span:
            self.take_free(n)
        span += next_span
        taken: cython.Py_ssize_t = min(wanted, span + prev_span) - span
        if prev_span - taken < MIN_SPAN:
            taken = prev_span
        p: cython.Py_ssize_t = h - (prev_span >> 3)
        self.take_free(p)
        if taken < prev_span:
            self.make_free(p, prev_span - taken)
        new_h: cython.Py_ssize_t = h - (taken >> 3)
        w.put(h, 0)  # the old header is payload now: its offset must not pass for a block
        w.put(new_h, (span + taken) | (PREV_FREE_BIT if taken < prev_span else 0) | LIVE_BIT)
        end: cython.Py_ssize_t = new_h + ((span + taken) >> 3)
        w.put(end, w.signed[end] & NOT_PREV_FREE)
        return self.expanded(flags, new_h, h, old_end)

    def expanded(self, flags: cython.Py_ssize_t, h: cython.Py_ssize_t, old_h: cython.Py_ssize_t,
                 old_end: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The offset after an expansion; zero the bytes the caller did not have if asked."""
        if flags & ZERO_MEMORY:
            span: cython.Py_ssize_t = self.words.signed[h] & SPAN_MASK
            self.zero((h << 3) + WORD, (old_h << 3) + WORD)
            self.zero(old_end, (h << 3) + span)
        return (h << 3) + WORD

    def zero(self, begin: int, end: int) -> None:
        """Write zeros over bytes ``[begin, end)`` (user bytes: not through the word view)."""
        if end > begin:
            if end > len(self._buf):
                raise SegmentCorrupt(f"a block reaches byte {end}, past the buffer")
            self._buf[begin:end] = bytes(end - begin)

    @damage_is_corruption
    def usable_size(self, offset: int) -> int:
        """The span less the header word (the footer word is usable while the block lives)."""
        if not 0 <= offset <= MAX_REQUEST:
            raise InvalidPointer(f"offset {offset} is not a block of this segment")
        h = self.live_header(offset)
        usable: int = (self.words.signed[h] & SPAN_MASK) - WORD
        return usable

    # -- region size ---------------------------------------------------------------------
    @damage_is_corruption
    def grow(self, extra: int) -> None:
        """Append ``extra`` bytes: they become a free block merged with a free last block."""
        w, r = self.words, self.words.signed
        check_grow(extra, self._start + r[self.control + C_SIZE], len(self._buf))
        new_size = r[self.control + C_SIZE] + extra
        end = r[self.end_word]
        new_end = _last_sentinel_word(self._start + new_size)
        sentinel = r[end]
        tail = (new_end - end) * WORD
        w.put(self.control + C_SIZE, new_size)
        if tail == 0 or (tail < MIN_SPAN and not sentinel & PREV_FREE_BIT):
            return  # too little for a block of its own: a later grow takes it in
        h = end
        if sentinel & PREV_FREE_BIT:  # the wilderness takes the tail in
            h = end - (self.take_free(end - (r[end - 1] >> 3)) >> 3)
        w.put(new_end, SENTINEL | PREV_FREE_BIT)
        w.put(self.end_word, new_end)
        self.make_free(h, (new_end - h) * WORD)

    @damage_is_corruption
    def shrink_to_fit(self) -> int:
        """Drop a free last block; return the new region size (up to the sentinel)."""
        w, r = self.words, self.words.signed
        end = r[self.end_word]
        if r[end] & PREV_FREE_BIT:
            last = end - (r[end - 1] >> 3)
            self.take_free(last)
            w.put(last, SENTINEL)
            w.put(self.end_word, last)
            end = last
        new_size = (end + 1) * WORD - self._start
        w.put(self.control + C_SIZE, new_size)
        return new_size

    @property
    def size(self) -> int:
        """Region bytes, as Boost's ``get_size`` less the segment header."""
        size: int = self.words.signed[self.control + C_SIZE]
        return size

    @property
    def free_memory(self) -> int:
        """The spans of the free blocks (their headers included), as Boost counts them."""
        free: int = self.words.signed[self.free_word]
        return free

    # -- introspection (cold paths) ------------------------------------------------------
    def blocks(self) -> Iterator[tuple[int, int, int]]:
        """``(h, header, span)`` of every block in address order, checked on the way.

        Each step advances at least MIN_SPAN bytes and stays before the sentinel, so the walk
        ends within the region whatever the bytes say (tlsf.c's ``tlsf_walk_pool``).
        """
        r = self.words.signed
        end = r[self.end_word]
        if not 0 <= end < len(r):
            raise SegmentCorrupt(f"the end word {end} lies past the buffer")
        h = self.first
        prev_free = False
        while h < end:
            header = r[h]
            span = header & SPAN_MASK
            if span < MIN_SPAN or h + (span >> 3) > end:
                raise SegmentCorrupt(f"block at word {h}: span {span} leaves the region")
            if header & END_BIT or bool(header & LIVE_BIT) == bool(header & FREE_BIT):
                raise SegmentCorrupt(f"block at word {h}: flags {header & FLAG_BITS:#x} are absurd")
            if bool(header & PREV_FREE_BIT) != prev_free:
                raise SegmentCorrupt(f"block at word {h}: P bit disagrees with the block before")
            free = bool(header & FREE_BIT)
            if free and prev_free:
                raise SegmentCorrupt(f"block at word {h}: two free blocks side by side")
            if free and r[h + (span >> 3) - 1] != span:
                raise SegmentCorrupt(f"block at word {h}: footer disagrees with header")
            yield h, header, span
            prev_free = free
            h += span >> 3
        if h != end or r[end] != SENTINEL | (PREV_FREE_BIT if prev_free else 0):
            raise SegmentCorrupt(f"the block chain does not end at the sentinel (word {end})")

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(block offset, span)`` of every free block in address order: the spans add up
        to ``free_memory``."""
        for h, header, span in self.blocks():
            if header & FREE_BIT:
                yield h << 3, span

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, usable_size)`` of every live block, in address order."""
        for h, header, span in self.blocks():
            if not header & FREE_BIT:
                yield (h << 3) + WORD, span - WORD

    @damage_is_corruption
    def all_memory_deallocated(self) -> bool:
        """True when the chain holds free blocks only (a walk: a cold path)."""
        return next(self.allocated_blocks(), None) is None

    @damage_is_corruption
    def zero_free_memory(self) -> None:
        """Zero each free block between its list links and its footer; the wilderness, in no
        list, from its header on (its link words hold whatever an earlier life left)."""
        top = self.words.signed[self.top_word]
        for h, header, span in list(self.blocks()):
            if header & FREE_BIT:
                links = 0 if h == top else PREV
                self.zero((h + 1 + links) * WORD, (h << 3) + span - WORD)

    # -- checks --------------------------------------------------------------------------
    def check_control(self) -> None:
        """The control block is plausible: magic, sizes, the table and END fit the buffer."""
        r, c = self.words.signed, self.control
        if c + CONTROL_WORDS > len(r) or r[c + C_MAGIC] != MAGIC | LAYOUT_VERSION:
            raise SegmentCorrupt("no segregated_fit control block at the region start")
        size = r[c + C_SIZE]
        rows = r[c + C_ROWS]
        end = r[c + C_END]
        if not 1 <= rows <= MAX_ROWS or not 0 < size <= len(self._buf) - self._start:
            raise SegmentCorrupt(f"control block: size {size} or rows {rows} out of range")
        # (END == first block: shrink_to_fit gave back everything, there are no blocks)
        if end % 2 == 0 or not self.first <= end <= _last_sentinel_word(self._start + size):
            raise SegmentCorrupt(f"control block: end word {end} out of range")
        top = r[c + C_TOP]
        if top and (top % 2 == 0 or not self.first <= top < end):
            raise SegmentCorrupt(f"control block: TOP word {top} out of range")
        if r[c + C_FL_BITMAP] >> rows or not 0 <= r[c + C_FREE] <= size:
            raise SegmentCorrupt("control block: bitmap or free-byte count out of range")

    @damage_is_corruption
    def verify(self) -> None:
        """Walk the block chain, then every free list against the bitmaps and the chain."""
        self.check_control()
        self.verify_lists()

    def verify_lists(self) -> None:
        r = self.words.signed
        free_spans = {h: span for h, header, span in self.blocks() if header & FREE_BIT}
        if sum(free_spans.values()) != r[self.free_word]:
            raise SegmentCorrupt("the free-byte count disagrees with the free blocks")
        end = r[self.end_word]
        top = end - (r[end - 1] >> 3) if r[end] & PREV_FREE_BIT else 0
        if r[self.top_word] != top:
            raise SegmentCorrupt(f"TOP is word {r[self.top_word]}, the wilderness is at {top}")
        free_spans.pop(top, None)  # the wilderness (the walk checked its footer) is in no list
        fl_map = r[self.fl_map]
        listed = 0
        for fl in range(self.rows):
            row_map = r[self.row_maps + fl]
            if bool(fl_map >> fl & 1) != bool(row_map) or row_map >> SL_COUNT:
                raise SegmentCorrupt(f"the first-level bitmap disagrees with row {fl}")
            for sl in range(SL_COUNT):
                index = (fl << SL_LOG2) + sl
                head = r[self.heads + index]
                if bool(row_map >> sl & 1) != bool(head):
                    raise SegmentCorrupt(f"the second-level bitmap disagrees with list {index}")
                listed += self.verify_list(index, head, free_spans, len(free_spans) - listed)
        if listed != len(free_spans):
            raise SegmentCorrupt(f"{len(free_spans) - listed} free blocks are in no list")

    def verify_list(self, index: int, h: int, free_spans: dict[int, int], room: int) -> int:
        """Check one list (more than ``room`` nodes means a cycle); return its length."""
        r = self.words.signed
        prev = 0
        count = 0
        while h:
            if count == room:
                raise SegmentCorrupt(f"list {index} is longer than the free blocks (a cycle?)")
            span = free_spans.get(h)
            if span is None:
                raise SegmentCorrupt(f"list {index} holds word {h}, not a free block")
            if self.list_of(span) != index:
                raise SegmentCorrupt(f"list {index} holds a block of span {span}")
            if r[h + PREV] != prev:
                raise SegmentCorrupt(f"list {index}: the back link of word {h} is wrong")
            prev, h = h, r[h + NEXT]
            count += 1
        return count


class SegregatedFit(_Tlsf, MemoryAlgorithm):
    """TLSF: O(1) good-fit allocation and immediate coalescing, all state in the segment."""

    name = "segregated_fit"
    layout_version = LAYOUT_VERSION
    ALIGNMENT = ALIGN
    PAYLOAD_PER_ALLOCATION = WORD
    MIN_SEGMENT_SIZE = MIN_SEGMENT_SIZE

    @classmethod
    def format(cls, buf: memoryview, start: int, size: int) -> SegregatedFit:
        """Lay out the control block, an empty list table and one free block over the rest."""
        check_region(len(buf), start, size, alignment=WORD, min_size=MIN_SEGMENT_SIZE)
        control = start // WORD
        rows = rows_for(size)
        table_words = CONTROL_WORDS + rows + rows * SL_COUNT
        raw = word_view(buf)
        raw[control : control + table_words] = memoryview(bytes(table_words * WORD)).cast("Q")
        raw[control + C_MAGIC] = MAGIC | LAYOUT_VERSION
        raw[control + C_SIZE] = size
        raw[control + C_ROWS] = rows
        end = _last_sentinel_word(start + size)
        raw[control + C_END] = end
        raw[end] = SENTINEL
        algo: _Tlsf = cls(buf, start)
        first = _first_block(control, rows)
        algo.words.store(end, SENTINEL | PREV_FREE_BIT)
        algo.make_free(first, (end - first) * WORD)
        return algo  # type: ignore[return-value]

    @classmethod
    def attach(cls, buf: memoryview, start: int) -> SegregatedFit:
        """Bind to a formatted region after checking its control block (O(1); see ``verify``)."""
        if start < 0 or start % WORD:
            raise ValueError(f"start must be a non-negative multiple of {WORD}, got {start}")
        algo = cls(buf, start)
        algo.check_control()
        return algo


@compiled_hookimpl
def segalloc_register_algorithms(register: Callable[[type[MemoryAlgorithm]], None]) -> None:
    """Register ``segregated_fit`` like any third-party algorithm."""
    register(SegregatedFit)
