"""Crash consistency: an undo journal inside the segment.

A process killed inside an operation leaves in-segment structures half changed. In a segment
with a journal, every metadata word an operation overwrites is first logged (word index, old
value); the number of valid entries is the header's transaction word. Committing stores 0 there,
one aligned 8-byte store that a killed process either made or did not. The next process to open
or lock the segment finds a non-zero count and writes the logged values back in reverse order:
the interrupted operation never happened. Rolling back twice is harmless, so a process killed
while recovering is recovered again by the next one.

Writes are logged by handing the algorithm (and the name index) a word view whose
``__setitem__`` logs first: a ctypes ``c_uint64`` array over the same memory, so reads keep
their C speed. An operation that outgrows the journal sets the ``UNJOURNALED`` bit and goes on
without logging: after a crash there it cannot be undone, so recovery keeps the segment only if
``verify()`` finds it consistent (and raises ``SegmentCorrupt`` otherwise).

Journal block (allocated from the segment's algorithm; its offset is in the header)::

    J+ 0  magic     u64  JOURNAL_MAGIC
    J+ 8  capacity  u64  entries the block holds
    J+16  entries   capacity x (word index u64, old value u64)

Transaction word (header offset ``DIRTY_AT``): 0 idle; ``n`` > 0: ``n`` entries are valid;
``UNJOURNALED`` set: the running operation outgrew the journal.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

from segalloc.errors import InvalidSegment, SegmentCorrupt
from segalloc.header import DIRTY_AT, INDEX_ROOT_AT
from segalloc.interfaces import MemoryAlgorithm

__all__ = ["UNJOURNALED", "Journal", "journal_capacity", "word_view"]

JOURNAL_MAGIC = 0x314C4E524A474553  # "SEGJRNL1"
UNJOURNALED = 1 << 63
DIRTY_WORD = DIRTY_AT // 8
ENTRY_WORDS = 2
BLOCK_HEADER = 16
MAX_ENTRIES = 1024
MIN_ENTRIES = 32


def journal_capacity(segment_size: int) -> int:
    """Entries for a segment: about 1/64 of it, at most ``MAX_ENTRIES``; 0 when too small."""
    entries = min(segment_size // 64 // (8 * ENTRY_WORDS), MAX_ENTRIES)
    return entries if entries >= MIN_ENTRIES else 0


def word_view(buf: memoryview) -> memoryview:
    """The plain 64-bit word view of a segment buffer."""
    return buf[: len(buf) & -8].cast("Q")


@functools.cache
def _logging_array(words: int) -> Any:
    """A ``c_uint64 * words`` subclass whose stores are logged before they land."""

    class LoggingWords(ctypes.c_uint64 * words):  # type: ignore[misc]
        raw: memoryview
        entries: int
        capacity: int

        def __setitem__(self, index: Any, value: Any) -> None:
            if isinstance(index, slice):
                for at, item in zip(range(*index.indices(len(self))), value):
                    self[at] = item
                return
            raw = self.raw
            count = raw[DIRTY_WORD]
            if count < self.capacity:
                at = self.entries + ENTRY_WORDS * count
                raw[at] = index
                raw[at + 1] = raw[index]
                raw[DIRTY_WORD] = count + 1
            elif not count & UNJOURNALED:
                raw[DIRTY_WORD] = count | UNJOURNALED
            raw[index] = value

    return LoggingWords


class Journal:
    """The journal of one mapped segment: logging views, commit, rollback, recovery."""

    def __init__(self, buf: memoryview, offset: int) -> None:
        self.raw = word_view(buf)
        self.offset = offset
        if offset:
            self.capacity = self._validated_capacity()
            logging = _logging_array(len(self.raw)).from_buffer(buf)
            logging.raw = self.raw
            logging.entries = (offset + BLOCK_HEADER) // 8
            logging.capacity = self.capacity
            self.words: Any = logging
        else:
            self.capacity = 0
            self.words = self.raw

    def _validated_capacity(self) -> int:
        raw, at = self.raw, self.offset // 8
        if self.offset % 8 or at + 2 > len(raw) or raw[at] != JOURNAL_MAGIC:
            raise SegmentCorrupt(f"no journal block at offset {self.offset}")
        capacity = raw[at + 1]
        if self.offset + BLOCK_HEADER + 8 * ENTRY_WORDS * capacity > 8 * len(raw):
            raise SegmentCorrupt(f"journal at {self.offset} claims {capacity} entries past the end")
        return int(capacity)

    @staticmethod
    def create(buf: memoryview, algorithm: MemoryAlgorithm) -> int:
        """Allocate and initialise a journal block sized for the segment; 0 when there is no room
        (the segment then runs unjournaled)."""
        capacity = journal_capacity(len(buf))
        if not capacity:
            return 0
        offset = algorithm.allocate(BLOCK_HEADER + 8 * ENTRY_WORDS * capacity)
        if offset is None:
            return 0
        raw = word_view(buf)
        raw[offset // 8] = JOURNAL_MAGIC
        raw[offset // 8 + 1] = capacity
        return offset

    # -- transactions ------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True when writes are being logged."""
        return self.capacity > 0

    def pending(self) -> int:
        """The transaction word: non-zero when an operation is (or was, if its process died)
        under way."""
        return int(self.raw[DIRTY_WORD])

    def commit(self) -> None:
        """Make the operation's writes permanent (one 8-byte store)."""
        self.raw[DIRTY_WORD] = 0

    def preserve(self, start: int, end: int) -> None:
        """Log the words covering bytes ``[start, end)`` before the segment overwrites them with
        user-visible bytes inside an operation (an object's header, a moved block): a rollback
        must give the algorithm back whatever it kept there while the block was free."""
        if not self.capacity:
            return
        raw = self.raw
        first, last = start >> 3, (end + 7) >> 3
        count = raw[DIRTY_WORD]
        if count & UNJOURNALED:
            return
        if count + last - first > self.capacity:
            raw[DIRTY_WORD] = count | UNJOURNALED
            return
        at = (self.offset + BLOCK_HEADER) // 8 + ENTRY_WORDS * count
        for index in range(first, last):
            raw[at] = index
            raw[at + 1] = raw[index]
            at += ENTRY_WORDS
        raw[DIRTY_WORD] = count + last - first

    def rollback(self) -> None:
        """Write back every logged old value, newest first; then the operation never happened."""
        raw = self.raw
        count = raw[DIRTY_WORD] & ~UNJOURNALED
        if count > self.capacity:
            raise SegmentCorrupt(f"transaction word claims {count} journal entries, "
                                 f"the journal holds {self.capacity}")
        entries = (self.offset + BLOCK_HEADER) // 8
        journal_words = range(self.offset // 8, entries + ENTRY_WORDS * self.capacity)
        for n in range(count - 1, -1, -1):
            index, old = raw[entries + ENTRY_WORDS * n], raw[entries + ENTRY_WORDS * n + 1]
            # the header's fields (before the transaction word) are logged by a class-level resize
            writable = index < DIRTY_WORD or INDEX_ROOT_AT // 8 <= index < len(raw)
            if not writable or index in journal_words:
                raise SegmentCorrupt(f"journal entry {n} names word {index}, outside what operations write")
            raw[index] = old
        raw[DIRTY_WORD] = 0

    def finish(self, failed: bool) -> None:
        """End the running operation: commit it, or roll it back when it raised (an operation
        that outgrew the journal cannot be rolled back and is kept as it stands)."""
        if failed and not self.pending() & UNJOURNALED:
            self.rollback()
        else:
            self.commit()

    def recover(self, verify: Callable[[], None] | None) -> str | None:
        """Undo what a dead process left half done; what was done, or None when nothing was.

        ``verify`` checks the whole segment (used when the interrupted operation was not
        logged; None before an algorithm is attached, when only a logged operation can be
        undone). ``InvalidSegment`` when the bytes are read-only and need repair.
        """
        word = self.pending()
        if not word:
            return None
        if self.raw.readonly:
            raise InvalidSegment("an operation was interrupted by a crash; open the segment "
                                 "writable once to roll it back")
        if word & UNJOURNALED:
            if verify is None:
                raise SegmentCorrupt("an interrupted operation outgrew the journal; "
                                     "it can be checked only once the algorithm is attached")
            try:
                verify()
            except InvalidSegment as exc:
                raise SegmentCorrupt("an operation too large for the journal was interrupted "
                                     f"and left the segment inconsistent: {exc}") from exc
            self.commit()
            return "an operation too large for the journal was interrupted; the segment verified"
        self.rollback()
        return f"rolled back an interrupted operation ({word} journal entries)"
