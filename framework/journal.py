# cython: annotation_typing=False
"""Crash consistency: an elastic undo journal inside the segment.

A process killed inside an operation leaves in-segment structures half changed. In a segment
with a journal, every metadata word an operation or ``seg.transaction()`` overwrites is first
logged (word index, old value), at most once per transaction (bytes stored over equal ones
change no word and log none); the number of valid entries is the header's transaction word.
Committing stores 0 there, one aligned 8-byte store that a killed process either made or did
not. The next process to open or lock the segment finds a non-zero count and writes the logged
values back, newest first: the interrupted work never happened. Rolling back records its
progress in the transaction word, so a process killed while recovering is recovered again by the
next one. Nothing ever runs unlogged: a write the journal cannot log raises ``BadAlloc`` and the
whole transaction is rolled back.

The journal is a chain of extents. The base extent is allocated when the segment is formatted
and never freed. When a transaction has used most of the chain, the next *safe point* (the start
of a segment operation, ``Segment.write``, an allocator call of the containers or the name
index: moments when the algorithm's structures are whole) takes another extent from the
segment's algorithm, twice as large as the chain so far. Taking it is itself logged (the
allocation's writes, the new extent's header, the link to it), and extents beyond the base are
given back when the transaction commits or rolls back.

An extent's entries overwrite memory the rollback may need: the algorithm keeps links and
boundary tags inside free blocks, and a block freed earlier in the transaction still holds
data the rollback brings back to life. So an extent is laid only over words that are safe to
clobber: words the transaction has logged already, and words that are zero in the state before
the transaction once the algorithm has zeroed its free memory (computed on a copy: the log
undone, ``zero_free_memory()`` run). Rolling back zeroes an extent's entries before undoing
older entries, which brings each such word back (its old value was zero, was free memory the
algorithm does not read, or is restored by an older entry).

Extent (journal-owned words; ``X`` is the extent's offset, the base one in the header)::

    X+ 0  magic     u64  EXTENT_MAGIC
    X+ 8  capacity  u64  entries the extent holds
    X+16  next      u64  offset of the next extent of the chain (0: the last)
    X+24  block     u64  the allocated block the extent lies in (0: the base, never freed)
    X+32  entries   capacity x (word index u64, old value u64)

Transaction word (header offset ``DIRTY_AT``): 0 idle; ``n`` > 0: the first ``n`` entries of
the chain (the base's first, then each extent's in chain order) are valid. A chain linked
from the base while the word is 0 is left over from a commit that did not finish giving it
back; the next lock holder frees it.
"""

from __future__ import annotations

import weakref
from typing import Any

from segalloc.errors import BadAlloc, InvalidSegment, SegmentCorrupt
from segalloc.header import HEADER_SIZE, INDEX_ROOT_AT
from segalloc.interfaces import MemoryAlgorithm
from segalloc.word_set import WordSet
from segalloc.words import DIRTY_WORD, ENTRY_WORDS, Words, word_view

__all__ = ["BASE_ENTRIES", "ENTRIES_PER_CALL", "EXTENSION_ENTRIES", "HEADROOM", "M_NEXT", "Journal",
           "journal_capacity"]

EXTENT_MAGIC = 0x324C4E524A474553  # "SEGJRNL2"
M_MAGIC, M_CAPACITY, M_NEXT, M_BLOCK = range(4)
HEADER_WORDS = 4
#: the fewest entries of the base extent (tunable): a few operations fit before the first
#: extent; segments under 2 KiB get half as many (1/32 of their bytes, at least 32 entries)
BASE_ENTRIES = 64
#: the most entries of the base extent (tunable): larger transactions take extents
MAX_BASE_ENTRIES = 1024
#: the most entries one allocator call logs (tunable; 16 measured over the three algorithms
#: in 20,000 random calls each): callers reserve this much a call before a run of calls
ENTRIES_PER_CALL = 20
#: what taking an extent logs: one allocation, the extent's header and the link to it
EXTENSION_ENTRIES = ENTRIES_PER_CALL + HEADER_WORDS + 1
#: free entries a safe point asks for beyond the writes it announces: one allocator call
HEADROOM = ENTRIES_PER_CALL
assert EXTENSION_ENTRIES + HEADROOM <= BASE_ENTRIES, "a fresh transaction can extend"


def journal_capacity(segment_size: int) -> int:
    """Entries of the base extent: about 1/64 of the segment, between the bounds."""
    floor = min(max(segment_size // 32, BASE_ENTRIES // 2), BASE_ENTRIES)
    return max(floor, min(segment_size // 64 // (8 * ENTRY_WORDS), MAX_BASE_ENTRIES))


class _Chain:
    """The extents of a journal as read from the segment: header word indexes and capacities,
    checked (bounded by what the segment can hold, cycles refused)."""

    def __init__(self, raw: Any, base: int) -> None:
        self.headers: list[int] = []
        self.capacities: list[int] = []
        self.firsts: list[int] = []
        seen: set[int] = set()
        offset, first = base, 0
        for _ in range(len(raw) // (HEADER_WORDS + ENTRY_WORDS) + 1):
            if not offset:
                return
            at = offset >> 3
            if offset % 8 or at in seen or not INDEX_ROOT_AT // 8 < at <= len(raw) - HEADER_WORDS:
                raise SegmentCorrupt(f"journal extent at {offset} is outside the segment or a cycle")
            if raw[at + M_MAGIC] != EXTENT_MAGIC:
                raise SegmentCorrupt(f"no journal extent at offset {offset}")
            capacity = int(raw[at + M_CAPACITY])
            if at + HEADER_WORDS + ENTRY_WORDS * capacity > len(raw):
                raise SegmentCorrupt(f"journal extent at {offset} claims {capacity} entries past the end")
            seen.add(at)
            self.headers.append(at)
            self.capacities.append(capacity)
            self.firsts.append(first)
            first += capacity
            offset = int(raw[at + M_NEXT])
        raise SegmentCorrupt("the journal's chain of extents does not end")

    @property
    def total(self) -> int:
        return self.firsts[-1] + self.capacities[-1]

    def slots(self, k: int) -> int:
        return self.headers[k] + HEADER_WORDS


def _longest_run(words: Any, logged: WordSet, first: int, end: int) -> tuple[int, int]:
    """The longest run of word indexes in ``[first, end)`` whose word is zero in ``words`` or
    logged already, as ``(start, stop)`` (compiled, journal.pxd: a C loop over the block)."""
    start, stop, run = 0, 0, first
    for index in range(first, end):
        if words[index] and not logged.holds(index):
            if index - run > stop - start:
                start, stop = run, index
            run = index + 1
    if end - run > stop - start:
        start, stop = run, end
    return start, stop


def _undo(raw: Any, base: int) -> int:
    """Write back the valid entries of the chain at ``base`` into ``raw``, newest first, zeroing
    each extent beyond the base once its entries are undone; the entries undone.

    Progress goes to the transaction word extent by extent, so an interrupted undo resumes."""
    chain = _Chain(raw, base)
    count = int(raw[DIRTY_WORD])
    if count > chain.total:
        raise SegmentCorrupt(f"transaction word claims {count} journal entries, "
                             f"the journal holds {chain.total}")
    base_words = range(chain.headers[0], chain.slots(0) + ENTRY_WORDS * chain.capacities[0])
    base_next = chain.headers[0] + M_NEXT
    undone = count
    for k in range(len(chain.headers) - 1, -1, -1):
        first, slots = chain.firsts[k], chain.slots(k)
        for n in range(count - 1, first - 1, -1):
            at = slots + ENTRY_WORDS * (n - first)
            index, old = raw[at], raw[at + 1]
            # the header's fields before the transaction word are logged by a class-level resize
            writable = index < DIRTY_WORD or INDEX_ROOT_AT // 8 <= index < len(raw)
            if not writable or (index in base_words and index != base_next):
                raise SegmentCorrupt(f"journal entry {n} names word {index}, outside what "
                                     "operations write")
            raw[index] = old
        if count > first:
            count = first
            raw[DIRTY_WORD] = first
        if k:  # its header comes back with the older entries that logged it
            end = slots + ENTRY_WORDS * chain.capacities[k]
            raw[slots:end] = memoryview(bytes(8 * (end - slots))).cast("Q")
    raw[DIRTY_WORD] = 0
    return undone


class Journal:
    """The journal of one mapped segment: the logging view, safe-point growth, commit,
    rollback, recovery."""

    def __init__(self, buf: memoryview, offset: int) -> None:
        self.buf = buf
        self.raw = word_view(buf)
        self.offset = offset
        #: the bound algorithm (extents come from it); set by ``attach``
        self.algorithm: MemoryAlgorithm | None = None
        #: the view every metadata write goes through (logging when the segment has a journal)
        # (a weak proxy of the journal: no cycle, so close() unmaps without the GC)
        self.words = Words(buf, weakref.proxy(self) if offset else None)
        if offset:
            self.base_capacity = _Chain(self.raw, offset).capacities[0]
            self._reset()

    @staticmethod
    def create(buf: memoryview, algorithm: MemoryAlgorithm) -> int:
        """Allocate and initialise the base extent; 0 when the segment has no room for it."""
        capacity = journal_capacity(len(buf))
        offset = algorithm.allocate(8 * (HEADER_WORDS + ENTRY_WORDS * capacity))
        if offset is None:
            return 0
        raw, at = word_view(buf), offset >> 3
        raw[at : at + HEADER_WORDS] = memoryview(bytes(8 * HEADER_WORDS)).cast("Q")
        raw[at + M_MAGIC] = EXTENT_MAGIC
        raw[at + M_CAPACITY] = capacity
        return int(offset)

    @property
    def active(self) -> bool:
        """True when writes are being logged."""
        return bool(self.offset)

    def attach(self, algorithm: MemoryAlgorithm) -> None:
        """Bind the algorithm extents are taken from."""
        self.algorithm = algorithm

    # -- per-transaction state (in this process only, rebuilt at each transaction) ----------
    def _reset(self) -> None:
        """Back to the base extent, nothing logged: after commit, rollback, fork."""
        view = self.words
        view.logged.clear()
        view.first = 0
        view.limit = self.base_capacity
        view.slots = (self.offset >> 3) + HEADER_WORDS
        view.doomed = False
        self._last = self.offset >> 3
        self._total = self.base_capacity

    def forget(self) -> None:
        """Drop this process's view of the running transaction (in a forked child, whose
        parent's thread owns it)."""
        self._reset()

    def pending(self) -> int:
        """The transaction word: non-zero when an operation is (or was, if its process died)
        under way."""
        return int(self.raw[DIRTY_WORD])

    def leftovers(self) -> bool:
        """True when a chain is linked from the base while no transaction runs."""
        return bool(self.offset) and not self.raw[DIRTY_WORD] and bool(
            self.raw[(self.offset >> 3) + M_NEXT])

    def advance(self, count: int) -> None:
        """Move the logging view on to the next extent of the chain (called when the current
        one is full); ``BadAlloc`` when there is none (the transaction is then rolled back)."""
        view = self.words
        header = view.slots - HEADER_WORDS
        nxt = self.raw[header + M_NEXT]
        if view.doomed or not nxt or count != view.limit:
            view.doomed = True
            raise BadAlloc("the undo journal is full and no extent could be taken from the "
                           "segment: the transaction is rolled back")
        view.first = view.limit
        view.limit += int(self.raw[(nxt >> 3) + M_CAPACITY])
        view.slots = (nxt >> 3) + HEADER_WORDS

    # -- safe points ---------------------------------------------------------------------
    def ensure(self, entries: int = 0) -> None:
        """At a safe point: make room to log ``entries`` more writes and one allocator call,
        taking extents from the algorithm while it can give them (best effort: a write the
        journal cannot log later raises ``BadAlloc``, and the transaction is rolled back)."""
        if not self.offset or self.words.doomed:
            return
        wanted = entries + HEADROOM
        if self.raw[DIRTY_WORD]:  # a transaction under way keeps the means to extend later
            wanted += EXTENSION_ENTRIES
        while self._total - self.raw[DIRTY_WORD] < wanted:
            if self._total - self.raw[DIRTY_WORD] < EXTENSION_ENTRIES:
                return  # too late to log taking one: what is left may still do
            if not self._extend(max(self._total, wanted + EXTENSION_ENTRIES)):
                return

    def _extend(self, capacity: int) -> bool:
        """Take one extent of up to ``capacity`` entries (fewer when the segment is short of
        clean memory); False when none could be taken."""
        algorithm = self.algorithm
        assert algorithm is not None, "extents are taken only once the algorithm is attached"
        while capacity >= EXTENSION_ENTRIES + HEADROOM:
            block = algorithm.allocate(8 * (HEADER_WORDS + ENTRY_WORDS * capacity))
            if block is not None:
                start, end = self._clean_run(block, block + algorithm.usable_size(block),
                                             HEADER_WORDS + ENTRY_WORDS * (capacity // 2))
                entries = (end - start - HEADER_WORDS) // ENTRY_WORDS
                if entries >= EXTENSION_ENTRIES + HEADROOM:
                    self._link(start, entries, block)
                    return True
                algorithm.deallocate(block)
            capacity //= 2
        return False

    def _clean_run(self, start: int, end: int, enough: int) -> tuple[int, int]:
        """The longest run of words in bytes ``[start, end)`` that an extent may overwrite (see
        the module docstring), as word indexes.

        A word that is zero now and not logged was zero before the transaction, so runs of
        such words (and logged ones) are clean on sight. Only when the longest of them leaves
        most of the block unused and is shorter than ``enough`` words (half the extent asked
        for: the chain still grows geometrically) is the state before the transaction
        rebuilt, on a copy of the segment (a cost proportional to the segment, not to the
        transaction: one stray word of an old block header in the middle of a clean block
        cost a 16 MiB segment's dict insert 30 ms)."""
        logged = self.words.logged
        best = _longest_run(self.raw, logged, start >> 3, end >> 3)
        run = best[1] - best[0]
        if 4 * run >= 3 * ((end - start) >> 3) or run >= enough:
            return best
        algorithm = self.algorithm
        assert algorithm is not None
        image = bytearray(self.buf)
        before = word_view(memoryview(image))
        _undo(before, self.offset)
        type(algorithm).attach(memoryview(image), HEADER_SIZE).zero_free_memory()
        return _longest_run(before, logged, start >> 3, end >> 3)

    def _link(self, at: int, entries: int, block: int) -> None:
        """Write the new extent's header and link it last (logged writes: a rollback brings
        the words back whether or not the link was made)."""
        words, raw = self.words, self.raw
        for index, value in ((at + M_MAGIC, EXTENT_MAGIC), (at + M_CAPACITY, entries),
                             (at + M_NEXT, 0), (at + M_BLOCK, block)):
            words[index] = value
        link = self._last + M_NEXT
        words.logged.discard(link)  # logged again even if logged before: a rollback must
        words[link] = at << 3  # unlink the extent before the older entries take its header
        assert raw[link] == at << 3
        self._last = at
        self._total += entries

    def preserve(self, start: int, end: int) -> None:
        """Log the words covering bytes ``[start, end)`` before the segment overwrites them with
        user-visible bytes inside an operation (an object's header, a moved block): a rollback
        must give the algorithm back whatever it kept there while the block was free (in a
        segment without a journal, the words' old values go to the logging view's ``undo``)."""
        if not self.words.logging:
            return
        first, last = start >> 3, (end + 7) >> 3
        self.ensure(last - first)
        words, raw = self.words, self.raw
        for index in range(first, last):
            words[index] = raw[index]

    # -- end of a transaction ------------------------------------------------------------
    def finish(self, failed: bool) -> None:
        """End the running transaction: commit it, or roll it back when it raised or the
        journal refused a write; ``BadAlloc`` when it was refused and nothing else raised."""
        if not self.offset:
            raise SegmentCorrupt("the transaction word of a segment without a journal is set")
        doomed = self.words.doomed
        if failed or doomed:
            self.rollback()
        else:
            self.words.commit()
            if self._last != self.offset >> 3:  # extents were taken: back to the base
                self._reset()
                self.give_back()
        if doomed and not failed:
            raise BadAlloc("the undo journal could not log the transaction; it was rolled back")

    def rollback(self) -> int:
        """Write back every logged old value, newest first; then the work never happened
        (the extents taken are given back with it)."""
        undone = _undo(self.raw, self.offset)
        self._reset()
        return undone

    def give_back(self) -> None:
        """Free the extents linked from the base (after a commit), last first, each in a small
        transaction of its own logged in the base extent."""
        algorithm, raw = self.algorithm, self.raw
        assert algorithm is not None
        for _ in range(len(raw)):
            chain = _Chain(raw, self.offset)
            if len(chain.headers) == 1:
                return
            last, entries = chain.headers[-1], chain.slots(len(chain.headers) - 1)
            self.words[chain.headers[-2] + M_NEXT] = 0
            # its entries are past any valid count: zeroed, the next extent laid over this
            # memory finds it clean on sight (``_clean_run``)
            end = entries + ENTRY_WORDS * chain.capacities[-1]
            raw[entries:end] = memoryview(bytes(8 * (end - entries))).cast("Q")
            algorithm.deallocate(int(raw[last + M_BLOCK]))
            raw[DIRTY_WORD] = 0
            self._reset()

    def recover(self) -> str | None:
        """Undo what a dead process left half done; what was done, or None when nothing was.

        ``InvalidSegment`` when the bytes are read-only and need repair."""
        if not self.raw[DIRTY_WORD]:
            return None
        if self.raw.readonly:
            raise InvalidSegment("an operation was interrupted by a crash; open the segment "
                                 "writable once to roll it back")
        if not self.offset:
            raise SegmentCorrupt("an operation was interrupted in a segment without a journal")
        undone = _undo(self.raw, self.offset)
        self._reset()
        return f"rolled back an interrupted operation ({undone} journal entries)"
