"""The word view through which every metadata write of a segment goes: plain, or logging.

A segment's algorithm, name index and containers keep their metadata as 64-bit words. On a
segment with an undo journal, each word's old value must be logged once per transaction before
the first store to it, so all stores go through one object: ``Words``. Compiled (Cython's
pure-Python mode, ``words.pxd``), readers index the typed ``signed`` view at C speed and
writers call ``store``, a C call; interpreted, the same code runs over memoryviews.

``signed`` reads words as signed 64-bit integers, in both builds alike: no legitimate word
reaches 2**63, so a hostile one reads negative and fails the range checks every reader makes
instead of wrapping C arithmetic around. ``raw`` keeps the unsigned view for callers that store
full 64-bit values (hashes) through ``words[i] = v``.

A segment without a journal (heap, external buffers: no other process sees them, and a crash
takes a heap with it) still undoes a failed operation or ``seg.transaction()``: while
``recording`` (``record_undo``), each store first appends the word's index and old value to an
undo log in this process (a C array of 64-bit pairs, not a dict of boxed ints: one append a
store, no hashing), and ``finish_undo(rollback=True)`` writes them back newest first, which
leaves every word with the value it had before its first store.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import cython

from segalloc.errors import SegmentCorrupt
from segalloc.header import DIRTY_AT
from segalloc.word_set import WordSet

if not cython.compiled:  # compiled, the C forms come from intrinsics.pxd
    from segalloc.intrinsics import copy_bytes, next_change

__all__ = ["DIRTY_WORD", "ENTRY_WORDS", "Words", "word_view"]

#: the transaction word: how many journal entries are valid (0: no transaction running)
DIRTY_WORD = DIRTY_AT // 8
#: a journal entry: the word index, then its old value
ENTRY_WORDS = 2
_DIRTY = cython.declare(cython.Py_ssize_t, DIRTY_WORD)
_ENTRY = cython.declare(cython.Py_ssize_t, ENTRY_WORDS)
#: the undo log's first capacity, in entries; it doubles when full and comes back to this size
#: after an operation that outgrew it many times over
_UNDO_START = cython.declare(cython.Py_ssize_t, 256)
_UNDO_KEPT = cython.declare(cython.Py_ssize_t, 1 << 16)


def _zeros(count: int) -> array[int]:
    """A signed 64-bit array of ``count`` zeros."""
    return array("q", bytes(8 * count))


def word_view(buf: memoryview) -> memoryview:
    """The plain unsigned 64-bit word view of a segment buffer."""
    return memoryview(buf).cast("B")[: len(buf) & -8].cast("Q")


@cython.cclass
class Words:
    """The segment's words: ``words[i]`` / ``words[i] = v`` for any caller, ``signed[i]`` and
    ``store(i, v)`` on the hot paths; when ``logging``, a store logs the old value first."""

    def __init__(self, buf: memoryview, journal: Any = None) -> None:
        """The words of ``buf``; each store logged to ``journal`` (its ``advance`` is called
        when the current extent is full) unless it is None."""
        raw = word_view(buf)
        self.raw = raw
        signed = raw.cast("B").cast("q")
        self.signed = signed
        octets = raw.cast("B")
        self.octets = octets
        self.readonly = raw.readonly
        if not self.readonly:
            self.out = signed
            self.octets_out = octets
        self.logging = journal is not None
        self.logged = WordSet()
        self.first = 0
        self.limit = 0
        self.slots = 0
        #: the journal refused a store (no room for its entry): the transaction must roll back
        self.doomed = False
        self.journal = journal
        self.recording = False
        self.undo_count = 0
        self.undo_entries = _zeros(_ENTRY * _UNDO_START)
        self.observer: Callable[[int], object] | None = None
        self._note_plain()

    def _note_plain(self) -> None:
        """Keep ``plain`` true exactly while a store is the word's write alone (writable, not
        logging, not observed), and ``undoing`` while it is that write and an undo-log append
        (recording, otherwise plain): ``store``'s fast paths. Interpreted, a method call a
        store would double the algorithms' cost, so a plain view stores through the unsigned
        memoryview itself (which refuses negative values and read-only memory as ``store``
        does)."""
        self.plain = not (self.readonly or self.logging or self.observer is not None)
        self.undoing = self.recording and not (self.readonly or self.observer is not None)
        if not cython.compiled:
            for name in ("store", "put"):
                if self.plain:
                    setattr(self, name, self.raw.__setitem__)
                else:
                    vars(self).pop(name, None)

    def observe(self, observer: Callable[[int], object] | None) -> None:
        """Call ``observer(index)`` after every store from now on (None: stop): for tests and
        probes that follow an operation write by write (crash images, write counts)."""
        self.observer = observer
        self._note_plain()

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, index: Any) -> Any:
        return self.raw[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        """Store one word (any 64-bit value) or a slice of them, logging when journaled."""
        if isinstance(index, slice):
            for at, item in zip(range(*index.indices(len(self.raw))), value):
                self[at] = item
            return
        if self.logging:
            self.log(index)
        self.raw[index] = value
        if self.observer is not None:
            self.observer(index)

    def store(self, index: cython.Py_ssize_t, value: cython.longlong) -> cython.int:
        """``words[index] = value`` for a value below 2**63 (every word an algorithm keeps).
        Its common case is a few instructions; the rest is ``store_logged``. Compiled callers
        call ``put``, the same store as an inline C method (``words.pxd``)."""
        if self.plain and value >= 0:
            self.out[index] = value
            return 0
        if self.undoing and value >= 0:
            self._keep_undo(index)
            self.out[index] = value
            return 0
        return self.store_logged(index, value)

    if not cython.compiled:  # compiled, put is words.pxd's inline C form of store
        put = store

    def store_logged(self, index: cython.Py_ssize_t, value: cython.longlong) -> cython.int:
        """``store`` with every check, the log and the observer."""
        if value < 0:
            raise ValueError(f"word {index}: negative value {value}")
        if self.readonly:
            raise TypeError("cannot modify read-only memory")
        if self.logging:
            self.log(index)
        self.out[index] = value
        if self.observer is not None:
            self.observer(index)
        return 0

    def store_bytes(self, at: cython.Py_ssize_t, data: bytes) -> None:
        """Write element bytes ``data`` at byte ``at`` (a container's keys and values): the
        words they change are logged first, as ``store`` does for one word, so a rollback
        brings back whatever the allocator kept there (a word they leave as it was needs no
        entry: a zeroed array over zero memory logs its header and name, not its elements),
        and the words they cover are shown to the observer."""
        end: cython.Py_ssize_t = at + len(data)
        if at < 0 or end > len(self.octets):
            raise IndexError(f"bytes [{at}, {end}) are outside the segment")
        if self.readonly:
            raise TypeError("cannot modify read-only memory")
        first: cython.Py_ssize_t = at >> 3
        last: cython.Py_ssize_t = (end + 7) >> 3
        index: cython.Py_ssize_t
        if self.logging:
            changed: cython.Py_ssize_t = next_change(self.octets, at, data, 0)
            while changed < len(data):
                index = (at + changed) >> 3
                self.log(index)
                changed = next_change(self.octets, at, data, ((index + 1) << 3) - at)
        copy_bytes(self.octets_out, at, data)
        if self.observer is not None:
            for index in range(first, last):
                self.observer(index)

    def record_undo(self) -> None:
        """From now on log each stored word's old value (a segment without a journal, for the
        operation or transaction starting)."""
        self.recording = True
        self.undo_count = 0
        self.logging = True
        self._note_plain()

    def finish_undo(self, rollback: cython.bint) -> None:
        """Stop logging old values; with ``rollback``, first write them all back, newest first."""
        count: cython.Py_ssize_t = self.undo_count
        at: cython.Py_ssize_t
        self.recording = False
        self.undo_count = 0
        self.logging = self.journal is not None
        if rollback:
            for at in range(_ENTRY * (count - 1), -1, -_ENTRY):
                self.out[self.undo_entries[at]] = self.undo_entries[at + 1]
        if len(self.undo_entries) > _ENTRY * _UNDO_KEPT:
            self.undo_entries = _zeros(_ENTRY * _UNDO_START)
        self._note_plain()

    def _keep_undo(self, index: cython.Py_ssize_t) -> cython.int:
        """Append ``index`` and its value to the undo log (doubling it when full)."""
        if index < 0 or index >= len(self.signed):
            raise IndexError(f"word {index} is outside the segment")
        at: cython.Py_ssize_t = _ENTRY * self.undo_count
        if at + _ENTRY > len(self.undo_entries):
            self._grow_undo()
        with cython.boundscheck(False):  # index checked above; the log has room for the entry
            self.undo_entries[at] = index
            self.undo_entries[at + 1] = self.signed[index]
        self.undo_count += 1
        return 0

    def _grow_undo(self) -> None:
        """Double the undo log (and one entry more: room for the next even from empty),
        keeping its entries."""
        grown: cython.longlong[::1] = _zeros(2 * len(self.undo_entries) + _ENTRY)
        kept: cython.Py_ssize_t = _ENTRY * self.undo_count
        grown[:kept] = self.undo_entries[:kept]
        self.undo_entries = grown

    def commit(self) -> None:
        """End the transaction: its entries no longer count (one aligned store of the
        transaction word) and nothing is logged any more."""
        self.out[_DIRTY] = 0
        self.logged.clear()

    def log(self, index: cython.Py_ssize_t) -> cython.int:
        """Keep ``index``'s old value: in the undo log while recording (at every store), else
        once a transaction, appended to the journal (which moves on to its next extent when
        the current one is full)."""
        if self.recording:
            return self._keep_undo(index)
        if index < 0 or index >= len(self.signed):
            raise IndexError(f"word {index} is outside the segment")
        if not self.logged.add(index):  # one probe: added, or logged already
            return 0
        count: cython.Py_ssize_t = self.signed[_DIRTY]
        if count < self.first:
            self.logged.discard(index)
            raise SegmentCorrupt(f"the transaction word ({count}) went back past the journal "
                                 f"extent in use (its first entry is {self.first})")
        if count >= self.limit:
            self.logged.discard(index)  # not logged until the entry is written
            self.journal.advance(count)
            self.logged.add(index)
        at: cython.Py_ssize_t = self.slots + _ENTRY * (count - self.first)
        # bounds-checked: the extent's place comes from segment words read at advance time
        self.out[at] = index
        self.out[at + 1] = self.signed[index]  # (the same 64 bits, whatever their sign)
        self.out[_DIRTY] = count + 1
        return 0
