"""The set of word indexes a transaction has logged already (``Words.logged``).

The journal keeps a word's old value once a transaction, so every journaled store asks whether
its word is logged already. A Python ``set`` of ints boxes each index and hashes the box, about
a third of a compiled journaled store. ``WordSet`` holds the indexes (never negative) in an
open-addressing table of 64-bit words instead: Fibonacci hashing, linear probing, at most half
full, doubling when it is; removal shifts the probe run back, so there are no tombstones. Both
builds run this code; compiled (``word_set.pxd``) the table is a C array and a lookup a few
instructions. ``clear`` runs at every commit, so it costs what a small transaction's table
holds: a table a larger transaction grew goes back to the first-size table, which the set keeps
(emptying it is a 512-byte fill; allocating one at every commit cost a fifth of a named
array's construct on shared memory).
"""

from __future__ import annotations

from array import array

import cython

if not cython.compiled:  # compiled, the C form comes from intrinsics.pxd
    from segalloc.intrinsics import fill_all_ones

__all__ = ["WordSet"]

#: an empty slot (no word index is negative)
_EMPTY = cython.declare(cython.longlong, -1)
#: 2**64 / the golden ratio: Knuth's multiplicative hash
_GOLDEN = cython.declare(cython.ulonglong, 0x9E3779B97F4A7C15)
_WORD_MASK = cython.declare(cython.ulonglong, 0xFFFFFFFFFFFFFFFF)
#: the first table size (a power of two), the one ``clear`` goes back to
_FIRST_BITS = cython.declare(cython.Py_ssize_t, 6)


def _empty_table(bits: int) -> array[int]:
    return array("q", [_EMPTY]) * (1 << bits)


@cython.cclass
class WordSet:
    """A set of non-negative word indexes: ``add`` (True when new), ``discard``, ``in``,
    ``len``, ``clear``."""

    def __init__(self) -> None:
        self._first_table = _empty_table(_FIRST_BITS)
        self._resize(_FIRST_BITS)

    def _resize(self, bits: cython.Py_ssize_t) -> None:
        """An empty table of ``2**bits`` slots (the kept first-size one, emptied, for
        ``_FIRST_BITS``)."""
        if bits == _FIRST_BITS:
            fill_all_ones(self._first_table)  # every slot _EMPTY
            self._table = self._first_table
        else:
            self._table = _empty_table(bits)
        self._bits = bits
        self._mask = (1 << bits) - 1
        self._count = 0

    def _home(self, index: cython.longlong) -> cython.Py_ssize_t:
        """The slot a probe for ``index`` starts at."""
        scrambled: cython.ulonglong = (cython.cast(cython.ulonglong, index) * _GOLDEN) & _WORD_MASK
        return cython.cast(cython.Py_ssize_t, scrambled >> (64 - self._bits))

    def _slot_of(self, index: cython.longlong) -> cython.Py_ssize_t:
        """The slot holding ``index``, or the empty one where it would go."""
        at: cython.Py_ssize_t = self._home(index)
        # every slot is masked by ``_mask``, the length - 1, of the table ``_resize`` set
        with cython.boundscheck(False), cython.initializedcheck(False):
            while self._table[at] != index and self._table[at] != _EMPTY:
                at = (at + 1) & self._mask
        return at

    def add(self, index: cython.longlong) -> cython.bint:
        """Add ``index``; True when it was not there (``ValueError`` if it is negative)."""
        if index < 0:
            raise ValueError(f"a word index is never negative, got {index}")
        at: cython.Py_ssize_t = self._slot_of(index)
        with cython.boundscheck(False), cython.initializedcheck(False):  # a slot, as _slot_of gives
            if self._table[at] == index:
                return False
            self._table[at] = index
        self._count += 1
        if 2 * self._count > self._mask + 1:
            self._grow()
        return True

    def _grow(self) -> None:
        """Twice the slots, the indexes held rehashed into them."""
        old = self._table
        held: cython.longlong
        count: cython.Py_ssize_t = self._count
        self._resize(self._bits + 1)
        for held in old:
            if held != _EMPTY:
                self._table[self._slot_of(held)] = held
        self._count = count

    def discard(self, index: cython.longlong) -> None:
        """Remove ``index`` if it is there; the run after it moves back over the gap."""
        if index < 0:
            return
        hole: cython.Py_ssize_t = self._slot_of(index)
        if self._table[hole] != index:
            return
        at: cython.Py_ssize_t = (hole + 1) & self._mask
        while self._table[at] != _EMPTY:
            home: cython.Py_ssize_t = self._home(self._table[at])
            if ((at - home) & self._mask) >= ((at - hole) & self._mask):
                self._table[hole] = self._table[at]  # its probe passes the hole: fill it
                hole = at
            at = (at + 1) & self._mask
        self._table[hole] = _EMPTY
        self._count -= 1

    def holds(self, index: cython.longlong) -> cython.bint:
        """True when ``index`` is in the set (``in`` for a C caller: no boxing)."""
        return index >= 0 and self._table[self._slot_of(index)] == index

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or not 0 <= index < 1 << 63:
            return False
        return bool(self.holds(index))

    def __len__(self) -> int:
        return self._count

    def clear(self) -> None:
        """Remove every index (a grown table goes back to the first size: emptying one that
        a large transaction grew would cost every later commit its size)."""
        if self._bits > _FIRST_BITS or self._count:
            self._resize(_FIRST_BITS)

    def __repr__(self) -> str:
        return f"<WordSet of {self._count} word indexes>"
