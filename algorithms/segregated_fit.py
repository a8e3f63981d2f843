"""Two-Level Segregated Fit (TLSF; Masmano, Ripoll, Crespo, Real, 2004), kept inside the segment.

Free blocks sit in segregated lists indexed by a first level (the power of two of the block's
span) and a second level (``SL_COUNT`` linear subdivisions of that power of two). One first-level
bitmap and one second-level bitmap per first level say which lists are non-empty, so
``allocate`` finds a list in O(1) with bit operations: the request is rounded up to the next
list so that any block found fits (good fit, no search), the block is split, and ``deallocate``
coalesces at once with both physical neighbours through boundary tags. Modelled on
mattconte/tlsf, written afresh for a word view of a Python buffer.

Reading order: constants, in-segment layout, mapping, free-list and block helpers (cold paths),
the hot paths (``allocate`` / ``deallocate``), the rest of the interface, checks.

Speed notes for CPython. The hot paths inline the mapping and the list operations of the cold
helpers (a call costs as much as two word reads); the tests run both against the same checks.
Every word the hot paths touch stays below 2**30 (a one-digit int: bit operations on larger
ints cost two to three times more), which is why headers hold only span and flags, and why the
second level has 16 lists (a 16-bit row bitmap).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
from segalloc.interfaces import Command, MemoryAlgorithm, hookimpl
from segalloc.walks import LinkWalk

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

# The hot paths' compound constants, folded once (CPython folds literals, not module names)
SPAN_ROUNDING = WORD + ALIGN - 1  #: span = (size + SPAN_ROUNDING) & SPAN_MASK
SPAN_MASK = -ALIGN
ALIGN_MASK = ALIGN - 1
ROW_BIAS = ALIGN_LOG2 << SL_LOG2  #: list index = (shift << SL_LOG2) - ROW_BIAS + top bits
NOT_PREV_FREE = ~PREV_FREE_BIT


# ------------------------------------------------------------------------------------------
# Mapping
# ------------------------------------------------------------------------------------------
def span_for(size: int) -> int:
    """The block span serving ``size`` payload bytes: header word added, 16-aligned, >= 32."""
    span = (size + WORD + ALIGN - 1) & -ALIGN
    return span if span > MIN_SPAN else MIN_SPAN


def list_index(span: int) -> int:
    """The list a free block of ``span`` bytes belongs to (before clamping to the table)."""
    if span < SMALL_SPAN:
        return span >> ALIGN_LOG2
    shift = span.bit_length() - MAP_BITS
    return ((shift - ALIGN_LOG2) << SL_LOG2) + (span >> shift)


def search_index(span: int) -> int:
    """The first list whose every block has at least ``span`` bytes (good fit)."""
    if span < SMALL_SPAN:
        return span >> ALIGN_LOG2
    shift = span.bit_length() - MAP_BITS
    return ((shift - ALIGN_LOG2) << SL_LOG2) + ((span + (1 << shift) - 1) >> shift)


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


#: control + one table row + a minimal free block + the sentinel + alignment slack
MIN_SEGMENT_SIZE = (CONTROL_WORDS + 1 + SL_COUNT + 1) * WORD + MIN_SPAN + 3 * WORD


class SegregatedFit(MemoryAlgorithm):
    """TLSF: O(1) good-fit allocation and immediate coalescing, all state in the segment."""

    name = "segregated_fit"
    layout_version = LAYOUT_VERSION
    ALIGNMENT = ALIGN
    PAYLOAD_PER_ALLOCATION = WORD
    MIN_SEGMENT_SIZE = MIN_SEGMENT_SIZE

    def __init__(self, buf: memoryview, start: int) -> None:
        """Bind the views; the rest are layout constants (ROWS never changes after format)."""
        byte_view = memoryview(buf).cast("B")
        self._buf = byte_view
        self.words = byte_view[: len(byte_view) & -WORD].cast("Q")
        self._start = start
        control = start // WORD
        self._c = control
        self._end_word = control + C_END
        self._free_word = control + C_FREE
        self._top_word = control + C_TOP
        self._bitmaps = control + C_FL_BITMAP
        self._row_maps = self._bitmaps + 1
        rows = self.words[control + C_ROWS] if control + C_ROWS < len(self.words) else 0
        self._rows = rows
        self._heads = control + CONTROL_WORDS + rows
        self._max_index = rows * SL_COUNT - 1
        self._first = _first_block(control, rows)

    # -- binding -------------------------------------------------------------------------
    @classmethod
    def format(cls, buf: memoryview, start: int, size: int) -> SegregatedFit:
        """Lay out the control block, an empty list table and one free block over the rest."""
        check_region(len(buf), start, size, alignment=WORD, min_size=MIN_SEGMENT_SIZE)
        control = start // WORD
        rows = rows_for(size)
        table_words = CONTROL_WORDS + rows + rows * SL_COUNT
        w = memoryview(buf).cast("B")[: (start + size) & -WORD].cast("Q")
        w[control : control + table_words] = memoryview(bytes(table_words * WORD)).cast("Q")
        w[control + C_MAGIC] = MAGIC | LAYOUT_VERSION
        w[control + C_SIZE] = size
        w[control + C_ROWS] = rows
        first = _first_block(control, rows)
        end = _last_sentinel_word(start + size)
        w[control + C_END] = end
        w[end] = SENTINEL
        algo = cls(buf, start)
        algo._release(first, (end - first) * WORD, False)
        return algo

    @classmethod
    def attach(cls, buf: memoryview, start: int) -> SegregatedFit:
        """Bind to a formatted region after checking its control block (O(1); see ``verify``)."""
        if start < 0 or start % WORD:
            raise ValueError(f"start must be a non-negative multiple of {WORD}, got {start}")
        algo = cls(buf, start)
        algo._check_control()
        return algo

    # -- free lists (cold paths; allocate and deallocate inline the same steps) ----------
    def _link(self, h: int, span: int) -> None:
        """Make ``[h, h+span)`` a free block: at the head of its list, or the wilderness when
        it touches the end sentinel (its neighbours are not free)."""
        w = self.words
        w[h] = span | FREE_BIT
        w[h + (span >> 3) - 1] = span
        w[self._free_word] += span
        if h + (span >> 3) == w[self._end_word]:
            w[self._top_word] = h
        else:
            self._push(h, min(list_index(span), self._max_index))

    def _push(self, h: int, index: int) -> None:
        """Put free block ``h`` at the head of list ``index``, setting the bitmaps' bits."""
        w = self.words
        slot = self._heads + index
        first = w[slot]
        w[h + NEXT] = first
        w[h + PREV] = 0
        if first:
            w[first + PREV] = h
        else:
            w[self._bitmaps + 1 + (index >> SL_LOG2)] |= 1 << (index & SL_MASK)
            w[self._bitmaps] |= 1 << (index >> SL_LOG2)
        w[slot] = h

    def _give_front(self, h: int, taken: int) -> None:
        """Hand the first ``taken`` bytes of free block ``h`` to the live block before it.

        The rest (at least MIN_SPAN) stays free: the wilderness stays the wilderness, and a
        rest that maps to the same list simply takes ``h``'s place there.
        """
        w = self.words
        span = w[h] - FREE_BIT
        rest = span - taken
        r = h + (taken >> 3)
        if h == w[self._top_word]:
            w[self._top_word] = r
        else:
            index = min(list_index(rest), self._max_index)
            if index == min(list_index(span), self._max_index):
                nxt = w[h + NEXT]
                prv = w[h + PREV]
                w[prv + NEXT if prv else self._heads + index] = r
                if nxt:
                    w[nxt + PREV] = r
                w[r + NEXT] = nxt  # (r may overlap h's links: they were read first)
                w[r + PREV] = prv
            else:
                self._unlink_links(h, span)
                self._push(r, index)
        w[r] = rest | FREE_BIT
        w[r + (rest >> 3) - 1] = rest
        w[self._free_word] -= taken

    def _unlink(self, h: int) -> int:
        """Take free block ``h`` out of its list (the wilderness is in none); return its span."""
        w = self.words
        span: int = w[h] & -ALIGN
        if h == w[self._top_word]:
            w[self._top_word] = 0
        else:
            self._unlink_links(h, span)
        w[self._free_word] -= span
        return span

    def _unlink_links(self, h: int, span: int) -> None:
        """Bypass free block ``h`` of ``span`` bytes in its list (the bitmaps follow when the
        list empties)."""
        w = self.words
        nxt = w[h + NEXT]
        prv = w[h + PREV]
        if prv:
            w[prv + NEXT] = nxt
        else:
            index = min(list_index(span), self._max_index)
            w[self._heads + index] = nxt
            if not nxt:
                self._clear_list_bit(index)
        if nxt:
            w[nxt + PREV] = prv

    def _clear_list_bit(self, index: int) -> None:
        """List ``index`` became empty: clear its bit, and its row's bit when that empties."""
        w = self.words
        row = self._bitmaps + 1 + (index >> SL_LOG2)
        row_map = w[row] & ~(1 << (index & SL_MASK))
        w[row] = row_map
        if not row_map:
            w[self._bitmaps] &= ~(1 << (index >> SL_LOG2))

    # -- blocks (cold paths) -------------------------------------------------------------
    def _release(self, h: int, span: int, prev_free: bool) -> None:
        """Free ``[h, h+span)``, coalescing with free neighbours (what ``deallocate`` does)."""
        w = self.words
        n = h + (span >> 3)
        next_header = w[n]
        if next_header & FREE_BIT:
            span += self._unlink(n)
        else:
            w[n] = next_header | PREV_FREE_BIT
        if prev_free:
            p = h - (w[h - 1] >> 3)
            span += self._unlink(p)
            h = p
        self._link(h, span)

    def _hand_out(self, h: int, span: int) -> None:
        """Zero the words free block ``h`` kept that become payload once it is allocated: its
        links and its footer. So after ``zero_free_memory`` every block allocated from free
        memory reads all zeros, as Boost's allocators clear their free-tree hook (the hot path
        in ``allocate`` inlines it: a list head's PREV is already 0, its NEXT is cleared when
        it is not)."""
        w = self.words
        w[h + NEXT] = 0
        w[h + PREV] = 0
        w[h + (span >> 3) - 1] = 0

    def _mark_allocated(self, h: int, span: int, prev_free: int) -> None:
        """Write a live header for ``[h, h+span)`` and clear the next block's P bit."""
        w = self.words
        w[h] = span | prev_free | LIVE_BIT
        w[h + (span >> 3)] &= ~PREV_FREE_BIT

    def _trim(self, h: int, new_span: int) -> bool:
        """Give back the tail of live block ``h`` past ``new_span``; False if it cannot."""
        w = self.words
        header = w[h]
        span = header & -ALIGN
        rest = span - new_span
        if rest == 0:
            return True
        if rest < MIN_SPAN and not w[h + (span >> 3)] & FREE_BIT:
            return False
        w[h] = new_span | (header & FLAG_BITS)
        self._release(h + (new_span >> 3), rest, False)
        return True

    def _live_header(self, offset: int) -> tuple[int, int]:
        """``(h, header)`` of the live block at ``offset``; ``InvalidPointer`` otherwise.

        All checks come before any write, so a bad offset changes nothing and a block freed
        twice already reads "free": the header is a live block's, its span stays in the region,
        the next block does not think it free, and a free previous block agrees with the
        footer before ``h``. (``deallocate`` and ``allocation_command`` inline them.)
        """
        w = self.words
        h = (offset >> 3) - 1
        end = w[self._end_word]
        if offset & ALIGN_MASK or h < self._first or h >= end:
            raise InvalidPointer(f"offset {offset} is not a block of this segment")
        header = w[h]
        span = header & SPAN_MASK
        n = h + (span >> 3)
        if header & LIVE_MASK != LIVE_BIT or span < MIN_SPAN or n > end or w[n] & PREV_FREE_BIT:
            raise InvalidPointer(f"offset {offset} is not a live block")
        if header & PREV_FREE_BIT:
            prev_span = w[h - 1]
            p = h - (prev_span >> 3)
            if p < self._first or w[p] != prev_span | FREE_BIT:
                raise InvalidPointer(f"offset {offset} is not a live block")
        return h, header

    def _take_oversized(self, span: int) -> int | None:
        """First fit in the last list, then the wilderness, for spans beyond the table's range
        (grown segments)."""
        w = self.words
        h = w[self._heads + self._max_index]
        walk = LinkWalk(self._block_bound(), "segregated_fit: the last free list",
                        "the blocks the region can hold")
        while True:
            walk.step(h)
            if not h:
                h = w[self._top_word]
                if not h or w[h] & -ALIGN < span:
                    return None
            found = w[h] & -ALIGN
            if found >= span:
                self._unlink(h)
                self._hand_out(h, found)
                self._mark_allocated(h, found, 0)
                self._trim(h, span)
                return (h << 3) + WORD
            h = w[h + NEXT]

    def _block_bound(self) -> int:
        """No walk visits more blocks than fit in the region."""
        return (self.words[self._end_word] - self._first) // (MIN_SPAN // WORD) + 1

    # -- hot paths -----------------------------------------------------------------------
    def allocate(self, size: int) -> int | None:
        """Good fit in O(1): round up to the next list, take its head, split off the rest;
        the wilderness's front when no list serves."""
        w = self.words
        try:
            span = (size + SPAN_ROUNDING) & SPAN_MASK
            if span < SMALL_SPAN:
                if span < MIN_SPAN:
                    span = MIN_SPAN
                index = span >> ALIGN_LOG2
            else:
                shift = span.bit_length() - MAP_BITS
                index = (shift << SL_LOG2) - ROW_BIAS + ((span + (1 << shift) - 1) >> shift)
                if index > self._max_index:
                    return self._take_oversized(span)
            fl = index >> SL_LOG2
            row_map = w[self._row_maps + fl] >> (index & SL_MASK)
            if row_map:
                if not row_map & 1:
                    index += (row_map & -row_map).bit_length() - 1
            else:
                fl_map = w[self._bitmaps] >> fl >> 1
                if not fl_map:
                    # no list serves: carve the front of the wilderness
                    h = w[self._top_word]
                    if not h:
                        return None
                    found = w[h] - FREE_BIT
                    if found & FLAG_BITS:
                        raise SegmentCorrupt(f"TOP (word {h}) is not a free block")
                    rest = found - span
                    if rest < MIN_SPAN:
                        if rest < 0:
                            return None
                        span = found
                        w[h + (found >> 3) - 1] = 0  # the footer is payload now (see _hand_out)
                        w[h + (found >> 3)] = SENTINEL  # (no longer after a free block)
                        w[self._top_word] = 0
                    else:
                        h_rest = h + (span >> 3)
                        w[h_rest] = rest | FREE_BIT
                        w[h_rest + (rest >> 3) - 1] = rest
                        w[self._top_word] = h_rest
                    w[h] = span | LIVE_BIT
                    w[self._free_word] -= span
                    return (h << 3) + WORD
                fl += (fl_map & -fl_map).bit_length()
                row_map = w[self._row_maps + fl]
                index = (fl << SL_LOG2) + (row_map & -row_map).bit_length() - 1
            slot = self._heads + index
            h = w[slot]
            found = w[h] - FREE_BIT  # a free block's header is exactly span | F
            rest = found - span
            nxt = w[h + NEXT]
            if rest < MIN_SPAN:
                w[h] = found | LIVE_BIT
                w[h + (found >> 3) - 1] = 0  # the footer is payload now (see _hand_out)
                w[h + (found >> 3)] &= NOT_PREV_FREE
                w[self._free_word] -= found
            else:
                h_rest = h + (span >> 3)
                w[h] = span | LIVE_BIT
                w[h_rest] = rest | FREE_BIT
                w[h_rest + (rest >> 3) - 1] = rest
                w[self._free_word] -= span
                if rest < SMALL_SPAN:
                    rest_index = rest >> ALIGN_LOG2
                else:
                    shift = rest.bit_length() - MAP_BITS
                    rest_index = (shift << SL_LOG2) - ROW_BIAS + (rest >> shift)
                    if rest_index > self._max_index:
                        rest_index = self._max_index
                if rest_index == index:  # the rest takes the found block's place
                    w[slot] = h_rest
                    w[h_rest + NEXT] = nxt
                    w[h_rest + PREV] = 0
                    if nxt:
                        w[nxt + PREV] = h_rest
                        w[h + NEXT] = 0  # payload now; a list head's PREV is 0 already
                    return (h << 3) + WORD
                self._push(h_rest, rest_index)
            # pop the found block off its list (the bitmaps follow when it empties)
            w[slot] = nxt
            if nxt:
                w[nxt + PREV] = 0
                w[h + NEXT] = 0  # payload now; a list head's PREV is 0 already
            else:
                row = self._row_maps + fl
                row_map = w[row] ^ (1 << (index & SL_MASK))
                w[row] = row_map
                if not row_map:
                    w[self._bitmaps] ^= 1 << fl
            return (h << 3) + WORD
        except DAMAGE as exc:
            raise damaged(self.name, "allocate", exc) from exc

    def deallocate(self, offset: int) -> None:
        """Free a live block and merge it with its free neighbours through the boundary tags."""
        w = self.words
        h = (offset >> 3) - 1
        try:
            # the checks of _live_header, inlined (a call costs as much as four word reads)
            end = w[self._end_word]
            if offset & ALIGN_MASK or h < self._first or h >= end:
                raise InvalidPointer(f"offset {offset} is not a block of this segment")
            header = w[h]
            span = header & SPAN_MASK
            n = h + (span >> 3)
            if header & LIVE_MASK != LIVE_BIT or span < MIN_SPAN or n > end:
                raise InvalidPointer(f"offset {offset} is not a live block")
            next_header = w[n]
            if next_header & PREV_FREE_BIT:
                raise InvalidPointer(f"offset {offset} is not a live block")
            if header & PREV_FREE_BIT:
                prev_span = w[h - 1]
                p = h - (prev_span >> 3)
                if p < self._first or w[p] != prev_span | FREE_BIT:
                    raise InvalidPointer(f"offset {offset} is not a live block")
            w[self._free_word] += span
            # the merged block ends at the sentinel (``top``): it is the wilderness, in no list
            if next_header & FREE_BIT:
                next_span = next_header - FREE_BIT
                span += next_span
                top = n + (next_span >> 3) == end
                next_listed = not top
            else:
                top = n == end
                next_listed = False
                w[n] = next_header | PREV_FREE_BIT
            # ``neighbour``: the listed free block whose list place the merged block may take
            if header & PREV_FREE_BIT:
                if next_listed:
                    self._unlink_links(n, next_span)
                w[h] = header | FREE_BIT  # the old header inside p reads "free": no double free
                h = neighbour = p
                span += prev_span
                if top:
                    self._unlink_links(p, prev_span)
                    neighbour_span = 0
                else:
                    neighbour_span = prev_span
            elif next_listed:
                neighbour = n
                neighbour_span = next_span
            else:
                neighbour_span = 0
            w[h] = span | FREE_BIT
            w[h + (span >> 3) - 1] = span
            if top:
                w[self._top_word] = h
                return
            if span < SMALL_SPAN:
                index = span >> ALIGN_LOG2
            else:
                shift = span.bit_length() - MAP_BITS
                index = (shift << SL_LOG2) - ROW_BIAS + (span >> shift)
                if index > self._max_index:
                    index = self._max_index
            if neighbour_span:
                if neighbour_span < SMALL_SPAN:
                    old_index = neighbour_span >> ALIGN_LOG2  # (never index: spans differ)
                else:
                    shift = neighbour_span.bit_length() - MAP_BITS
                    old_index = (shift << SL_LOG2) - ROW_BIAS + (neighbour_span >> shift)
                    if old_index > self._max_index:
                        old_index = self._max_index
                nxt = w[neighbour + NEXT]
                prv = w[neighbour + PREV]
                if old_index == index:
                    # same list: the merged block takes the neighbour's place in it
                    if neighbour != h:
                        w[prv + NEXT if prv else self._heads + index] = h
                        if nxt:
                            w[nxt + PREV] = h
                        w[h + NEXT] = nxt
                        w[h + PREV] = prv
                    return
                # unlink the neighbour (_unlink_links inlined)
                if prv:
                    w[prv + NEXT] = nxt
                else:
                    w[self._heads + old_index] = nxt
                    if not nxt:
                        self._clear_list_bit(old_index)
                if nxt:
                    w[nxt + PREV] = prv
            # push the merged block on its list (_push inlined)
            slot = self._heads + index
            first = w[slot]
            w[h + NEXT] = first
            w[h + PREV] = 0
            if first:
                w[first + PREV] = h
            else:
                w[self._row_maps + (index >> SL_LOG2)] |= 1 << (index & SL_MASK)
                w[self._bitmaps] |= 1 << (index >> SL_LOG2)
            w[slot] = h
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged(self.name, "deallocate", exc) from exc

    # -- the rest of the allocation interface --------------------------------------------
    @damage_is_corruption
    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        """Over-allocate, then give the front gap and the tail back to the lists."""
        if alignment <= ALIGN:
            return self.allocate(size)
        span = span_for(size)
        offset = self.allocate(span + alignment + ALIGN)
        if offset is None:
            return None
        if offset % alignment:
            aligned = (offset + MIN_SPAN + alignment - 1) & -alignment
            h = (offset >> 3) - 1
            gap = aligned - offset
            whole = self.words[h] & -ALIGN
            # the block came from a free list, so the block before it is not free
            self._mark_allocated(h + (gap >> 3), whole - gap, 0)
            self._release(h, gap, False)
            offset = aligned
        self._trim((offset >> 3) - 1, span)
        return offset

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        """Boost's command: expand forward/backward or shrink in place, else allocate new.

        Plain ``EXPAND_FWD`` is what reallocation issues (perl's trace: one operation in five),
        so it runs here inline; every other command goes through ``_command``.
        """
        try:
            if reuse is not None and command == EXPAND_FWD:
                w = self.words
                h = (reuse >> 3) - 1
                # the checks of _live_header, inlined
                end = w[self._end_word]
                if reuse & ALIGN_MASK or h < self._first or h >= end:
                    raise InvalidPointer(f"offset {reuse} is not a block of this segment")
                header = w[h]
                span = header & SPAN_MASK
                n = h + (span >> 3)
                if header & LIVE_MASK != LIVE_BIT or span < MIN_SPAN or n > end:
                    raise InvalidPointer(f"offset {reuse} is not a live block")
                next_header = w[n]
                if next_header & PREV_FREE_BIT:
                    raise InvalidPointer(f"offset {reuse} is not a live block")
                if header & PREV_FREE_BIT:
                    prev_span = w[h - 1]
                    p = h - (prev_span >> 3)
                    if p < self._first or w[p] != prev_span | FREE_BIT:
                        raise InvalidPointer(f"offset {reuse} is not a live block")
                wanted = (preferred_size + SPAN_ROUNDING) & SPAN_MASK
                least = (limit_size + SPAN_ROUNDING) & SPAN_MASK
                if wanted < least:  # (command_can_succeed, inlined)
                    return None, 0
                if span >= wanted:
                    return reuse, span - WORD
                if not next_header & FREE_BIT:
                    return (reuse, span - WORD) if span >= least else (None, 0)
                next_span = next_header - FREE_BIT
                if span + next_span < least:
                    return None, 0
                taken = wanted - span
                rest = next_span - taken
                if rest >= MIN_SPAN and n + (next_span >> 3) == end:
                    # (the common case: a block growing into the wilderness, in no list)
                    top = h + (wanted >> 3)
                    w[top] = rest | FREE_BIT
                    w[end - 1] = rest
                    w[self._top_word] = top
                    w[self._free_word] -= taken
                    w[h] = wanted | (header & FLAG_BITS)
                    return reuse, wanted - WORD
                return reuse, self._take_next(h, header, next_span, wanted) - WORD
            flags = int(command)
            if not command_can_succeed(flags, limit_size, preferred_size, reuse):
                return None, 0
            return self._command(flags, limit_size, preferred_size, reuse)
        except SegallocError:
            raise
        except DAMAGE as exc:
            raise damaged(self.name, "allocation_command", exc) from exc

    def _command(
        self, flags: int, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        if reuse is not None and flags & (EXPAND_FWD | EXPAND_BWD | SHRINKS):
            h, header = self._live_header(reuse)
            if flags & SHRINKS:
                return self._shrink(flags, h, header, limit_size, preferred_size)
            done = self._expand(flags, h, header, span_for(limit_size), span_for(preferred_size))
            if done is not None:
                return done
        if not flags & ALLOCATE_NEW:
            return None, 0
        offset = self.allocate(preferred_size)
        if offset is None:
            offset = self.allocate(limit_size)
            if offset is None:
                return None, 0
        received = (self.words[(offset >> 3) - 1] & -ALIGN) - WORD
        if flags & ZERO_MEMORY:
            self._zero(offset, offset + received)
        return offset, received

    def _take_next(self, h: int, header: int, next_span: int, wanted: int) -> int:
        """Grow live block ``h`` into its free successor of ``next_span`` bytes, up to a span
        of ``wanted`` (all of it when the rest would be too small to stay a block); the new
        span."""
        w = self.words
        span = header & -ALIGN
        n = h + (span >> 3)
        taken = min(wanted - span, next_span)
        if next_span - taken >= MIN_SPAN:
            self._give_front(n, taken)
            w[h] = (span + taken) | (header & FLAG_BITS)
            return span + taken
        self._unlink(n)
        self._mark_allocated(h, span + next_span, header & PREV_FREE_BIT)
        return span + next_span

    def _shrink(
        self, flags: int, h: int, header: int, limit_size: int, preferred_size: int
    ) -> tuple[int | None, int]:
        """SHRINK_IN_PLACE / TRY_SHRINK_IN_PLACE to a usable size in [preferred, limit]."""
        offset = (h << 3) + WORD
        usable = (header & -ALIGN) - WORD
        if usable < preferred_size:
            return None, 0
        new_span = span_for(preferred_size)
        if new_span - WORD <= limit_size and self._trim(h, new_span):
            return offset, new_span - WORD
        if usable <= limit_size or flags & TRY_SHRINK_IN_PLACE:
            return offset, usable
        return None, 0

    def _expand(
        self, flags: int, h: int, header: int, least: int, wanted: int
    ) -> tuple[int, int] | None:
        """Grow live block ``h`` in place to a span of ``wanted`` bytes, ``least`` at worst.

        Forward first (the offset stays); then backward into a free previous block, taking
        only what is needed from its end, so its front stays free.
        """
        w = self.words
        span = header & -ALIGN
        old_end = (h << 3) + span
        if span >= wanted:
            return (h << 3) + WORD, span - WORD
        n = h + (span >> 3)
        next_header = w[n]
        next_span = next_header & -ALIGN if flags & EXPAND_FWD and next_header & FREE_BIT else 0
        if span + next_span >= least:
            if next_span:
                self._take_next(h, header, next_span, wanted)
            return self._expanded(flags, h, h, old_end)
        if not (flags & EXPAND_BWD and header & PREV_FREE_BIT):
            return None
        prev_span = w[h - 1]
        if span + next_span + prev_span < least:
            return None
        if next_span:
            self._unlink(n)
        span += next_span
        taken = min(wanted, span + prev_span) - span
        if prev_span - taken < MIN_SPAN:
            taken = prev_span
        p = h - (prev_span >> 3)
        self._unlink(p)
        if taken < prev_span:
            self._link(p, prev_span - taken)
        new_h = h - (taken >> 3)
        w[h] = 0  # the old header is payload now: its offset must not pass for a block
        self._mark_allocated(new_h, span + taken, PREV_FREE_BIT if taken < prev_span else 0)
        return self._expanded(flags, new_h, h, old_end)

    def _expanded(self, flags: int, h: int, old_h: int, old_end: int) -> tuple[int, int]:
        """The result of an expansion; zero the bytes the caller did not have if asked."""
        span = self.words[h] & -ALIGN
        if flags & ZERO_MEMORY:  # (rare: the common path is two reads and a tuple)
            self._zero((h << 3) + WORD, (old_h << 3) + WORD)
            self._zero(old_end, (h << 3) + span)
        return (h << 3) + WORD, span - WORD

    def _zero(self, begin: int, end: int) -> None:
        """Write zeros over bytes ``[begin, end)``."""
        if end > begin:
            if end > len(self._buf):
                raise SegmentCorrupt(f"a block reaches byte {end}, past the buffer")
            self._buf[begin:end] = bytes(end - begin)

    @damage_is_corruption
    def usable_size(self, offset: int) -> int:
        """The span less the header word (the footer word is usable while the block lives)."""
        _, header = self._live_header(offset)
        usable: int = (header & -ALIGN) - WORD
        return usable

    # -- region size ---------------------------------------------------------------------
    @damage_is_corruption
    def grow(self, extra: int) -> None:
        """Append ``extra`` bytes: they become a free block merged with a free last block."""
        w = self.words
        check_grow(extra, self._start + w[self._c + C_SIZE], len(self._buf))
        new_size = w[self._c + C_SIZE] + extra
        end = w[self._end_word]
        new_end = _last_sentinel_word(self._start + new_size)
        sentinel = w[end]
        tail = (new_end - end) * WORD
        w[self._c + C_SIZE] = new_size
        if tail == 0 or (tail < MIN_SPAN and not sentinel & PREV_FREE_BIT):
            return  # too little for a block of its own: a later grow takes it in
        h = end
        if sentinel & PREV_FREE_BIT:  # the wilderness takes the tail in
            h = end - (self._unlink(end - (w[end - 1] >> 3)) >> 3)
        w[new_end] = SENTINEL | PREV_FREE_BIT
        w[self._end_word] = new_end
        self._link(h, (new_end - h) * WORD)

    @damage_is_corruption
    def shrink_to_fit(self) -> int:
        """Drop a free last block; return the new region size (up to the sentinel)."""
        w = self.words
        end = w[self._end_word]
        if w[end] & PREV_FREE_BIT:
            last = end - (w[end - 1] >> 3)
            self._unlink(last)
            w[last] = SENTINEL
            w[self._end_word] = last
            end = last
        new_size = (end + 1) * WORD - self._start
        w[self._c + C_SIZE] = new_size
        return new_size

    @property
    def size(self) -> int:
        """Region bytes, as Boost's ``get_size`` less the segment header."""
        size: int = self.words[self._c + C_SIZE]
        return size

    @property
    def free_memory(self) -> int:
        """The spans of the free blocks (their headers included), as Boost counts them."""
        free: int = self.words[self._free_word]
        return free

    # -- introspection (cold paths) ------------------------------------------------------
    def _blocks(self) -> Iterator[tuple[int, int, int]]:
        """``(h, header, span)`` of every block in address order, checked on the way.

        Each step advances at least MIN_SPAN bytes and stays before the sentinel, so the walk
        ends within the region whatever the bytes say (tlsf.c's ``tlsf_walk_pool``).
        """
        w = self.words
        end = w[self._end_word]
        if end >= len(w):
            raise SegmentCorrupt(f"the end word {end} lies past the buffer")
        h = self._first
        prev_free = False
        while h < end:
            header = w[h]
            span = header & -ALIGN
            if span < MIN_SPAN or h + (span >> 3) > end:
                raise SegmentCorrupt(f"block at word {h}: span {span} leaves the region")
            if header & END_BIT or bool(header & LIVE_BIT) == bool(header & FREE_BIT):
                raise SegmentCorrupt(f"block at word {h}: flags {header & FLAG_BITS:#x} are absurd")
            if bool(header & PREV_FREE_BIT) != prev_free:
                raise SegmentCorrupt(f"block at word {h}: P bit disagrees with the block before")
            free = bool(header & FREE_BIT)
            if free and prev_free:
                raise SegmentCorrupt(f"block at word {h}: two free blocks side by side")
            if free and w[h + (span >> 3) - 1] != span:
                raise SegmentCorrupt(f"block at word {h}: footer disagrees with header")
            yield h, header, span
            prev_free = free
            h += span >> 3
        if h != end or w[end] != SENTINEL | (PREV_FREE_BIT if prev_free else 0):
            raise SegmentCorrupt(f"the block chain does not end at the sentinel (word {end})")

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(block offset, span)`` of every free block in address order: the spans add up
        to ``free_memory``."""
        for h, header, span in self._blocks():
            if header & FREE_BIT:
                yield h << 3, span

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        """``(offset, usable_size)`` of every live block, in address order."""
        for h, header, span in self._blocks():
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
        top = self.words[self._top_word]
        for h, header, span in list(self._blocks()):
            if header & FREE_BIT:
                links = 0 if h == top else PREV
                self._zero((h + 1 + links) * WORD, (h << 3) + span - WORD)

    # -- checks --------------------------------------------------------------------------
    def _check_control(self) -> None:
        """The control block is plausible: magic, sizes, the table and END fit the buffer."""
        w, c = self.words, self._c
        if c + CONTROL_WORDS > len(w) or w[c + C_MAGIC] != MAGIC | LAYOUT_VERSION:
            raise SegmentCorrupt("no segregated_fit control block at the region start")
        size = w[c + C_SIZE]
        rows = w[c + C_ROWS]
        end = w[c + C_END]
        if not 1 <= rows <= MAX_ROWS or not 0 < size <= len(self._buf) - self._start:
            raise SegmentCorrupt(f"control block: size {size} or rows {rows} out of range")
        # (END == first block: shrink_to_fit gave back everything, there are no blocks)
        if end % 2 == 0 or not self._first <= end <= _last_sentinel_word(self._start + size):
            raise SegmentCorrupt(f"control block: end word {end} out of range")
        top = w[c + C_TOP]
        if top and (top % 2 == 0 or not self._first <= top < end):
            raise SegmentCorrupt(f"control block: TOP word {top} out of range")
        if w[c + C_FL_BITMAP] >> rows or w[c + C_FREE] > size:
            raise SegmentCorrupt("control block: bitmap or free-byte count out of range")

    @damage_is_corruption
    def verify(self) -> None:
        """Walk the block chain, then every free list against the bitmaps and the chain."""
        self._check_control()
        self._verify_lists()

    def _verify_lists(self) -> None:
        w = self.words
        free_spans = {h: span for h, header, span in self._blocks() if header & FREE_BIT}
        if sum(free_spans.values()) != w[self._free_word]:
            raise SegmentCorrupt("the free-byte count disagrees with the free blocks")
        end = w[self._end_word]
        top = end - (w[end - 1] >> 3) if w[end] & PREV_FREE_BIT else 0
        if w[self._top_word] != top:
            raise SegmentCorrupt(f"TOP is word {w[self._top_word]}, the wilderness is at {top}")
        free_spans.pop(top, None)  # the wilderness (the walk checked its footer) is in no list
        fl_map = w[self._bitmaps]
        listed = 0
        for fl in range(self._rows):
            row_map = w[self._bitmaps + 1 + fl]
            if bool(fl_map >> fl & 1) != bool(row_map) or row_map >> SL_COUNT:
                raise SegmentCorrupt(f"the first-level bitmap disagrees with row {fl}")
            for sl in range(SL_COUNT):
                index = (fl << SL_LOG2) + sl
                head = w[self._heads + index]
                if bool(row_map >> sl & 1) != bool(head):
                    raise SegmentCorrupt(f"the second-level bitmap disagrees with list {index}")
                listed += self._verify_list(index, head, free_spans, len(free_spans) - listed)
        if listed != len(free_spans):
            raise SegmentCorrupt(f"{len(free_spans) - listed} free blocks are in no list")

    def _verify_list(self, index: int, h: int, free_spans: dict[int, int], room: int) -> int:
        """Check one list (more than ``room`` nodes means a cycle); return its length."""
        w = self.words
        prev = 0
        count = 0
        while h:
            if count == room:
                raise SegmentCorrupt(f"list {index} is longer than the free blocks (a cycle?)")
            span = free_spans.get(h)
            if span is None:
                raise SegmentCorrupt(f"list {index} holds word {h}, not a free block")
            if min(list_index(span), self._max_index) != index:
                raise SegmentCorrupt(f"list {index} holds a block of span {span}")
            if w[h + PREV] != prev:
                raise SegmentCorrupt(f"list {index}: the back link of word {h} is wrong")
            prev, h = h, w[h + NEXT]
            count += 1
        return count


@hookimpl
def segalloc_register_algorithms(register: Callable[[type[MemoryAlgorithm]], None]) -> None:
    """Register ``segregated_fit`` like any third-party algorithm."""
    register(SegregatedFit)
