"""The deep check behind ``Segment.verify()`` and ``segalloc check``: every structure the
segment holds, walked and cross-checked, so "verified" means verified.

Order: the algorithm's own ``verify`` (block chain against free structures), then one walk of
its live blocks into a ``BlockLedger``, then the name index (``NameIndex.verify``: root, bucket
table, chains, hashes, counts, every entry a live block of the right size), then every object
found through the index whose type has a deep check (``segment_verify``, the optional member
of the ``SegmentType`` protocol, framework/objects.py). Each block an entry, a table or a
container claims must be a live block at least as big as claimed and is claimed once: a block
two objects believe they own is a fault. Every walk is bounded and cycle-detecting (see
``segalloc.walks``); the ledger costs 20 bytes a live block, and every live block weighs at
least 16 bytes of the segment, so a check never costs more than the segment really holds.

A type joins by ``register_segment_type(cls)`` (its exact type identity); the framework's
containers register a family (``SegmentList[...]`` of any element type) so a process that never
named the element type (``segalloc check`` on a file) still checks their links and blocks.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING

from segalloc.errors import InvalidPointer, SegmentCorrupt
from segalloc.interfaces import MemoryAlgorithm
from segalloc.names import Entry, NameIndex

if TYPE_CHECKING:
    from segalloc.interfaces import SegmentAccess

__all__ = ["BlockLedger", "Claim", "check_index_and_objects", "register_segment_type",
           "segment_type_for"]

#: ``claim(offset, size)``: the block at ``offset`` is owned by the object being checked and
#: must hold at least ``size`` bytes; ``SegmentCorrupt`` otherwise
Claim = Callable[[int, int], None]

#: what code reading a damaged word provokes, reported as the object's corruption
_DAMAGE = (IndexError, ValueError, OverflowError, struct.error)

_EXACT: dict[str, type] = {}
_FAMILIES: dict[str, type] = {}


def register_segment_type(cls: type, *, family: str | None = None) -> None:
    """Let the deep check find ``cls`` from a stored type identity: its exact
    ``segment_type_id()``, or with ``family`` every identity ``family[...]``."""
    if family is None:
        _EXACT[cls.segment_type_id()] = cls  # type: ignore[attr-defined]
    else:
        _FAMILIES[family] = cls


def segment_type_for(type_id: str) -> type | None:
    """The registered type that checks objects stored with ``type_id`` (None: none known)."""
    exact = _EXACT.get(type_id)
    if exact is not None:
        return exact
    return _FAMILIES.get(type_id.partition("[")[0]) if "[" in type_id else None


class BlockLedger:
    """The live blocks of one walk of the algorithm, in address order, and who claimed each."""

    def __init__(self, algorithm: MemoryAlgorithm) -> None:
        self._offsets = array("Q")
        self._sizes = array("Q")
        last = -1
        for offset, size in algorithm.allocated_blocks():
            if offset <= last:
                raise SegmentCorrupt(f"the live blocks are not in address order at {offset}")
            self._offsets.append(offset)
            self._sizes.append(size)
            last = offset
        self._owner = array("I", bytes(4 * len(self._offsets)))
        self._owners = ["(nobody)"]

    def claimer(self, owner: str) -> Claim:
        """The ``claim`` function of one owner (named in the faults it reports)."""
        self._owners.append(owner)
        number = len(self._owners) - 1

        def claim(offset: int, size: int) -> None:
            at = bisect_left(self._offsets, offset)
            if at == len(self._offsets) or self._offsets[at] != offset:
                raise SegmentCorrupt(f"{owner}: block {offset} is not a live block")
            if self._sizes[at] < size:
                raise SegmentCorrupt(f"{owner}: block {offset} holds {self._sizes[at]} bytes, "
                                     f"not the {size} it needs")
            if self._owner[at]:
                raise SegmentCorrupt(f"{owner}: block {offset} is also claimed by "
                                     f"{self._owners[self._owner[at]]}")
            self._owner[at] = number

        return claim


def _label(entry: Entry) -> str:
    name = entry.display_name
    shown = f"{entry.kind.name.lower()} object {name!r}" if name else f"object at {entry.handle}"
    return f"{shown} ({entry.type_id})"


def check_index_and_objects(segment: SegmentAccess, index: NameIndex) -> None:
    """The name index and every object found through it (after the algorithm's ``verify``)."""
    ledger = BlockLedger(segment.algorithm)
    entries = index.verify(ledger.claimer("the named-object index"),
                           lambda entry: ledger.claimer(_label(entry)))
    for entry in entries:
        cls = segment_type_for(entry.type_id)
        check = getattr(cls, "segment_verify", None)
        if check is None:
            continue
        label = _label(entry)
        if entry.is_array or entry.elem_size != cls.segment_sizeof():  # type: ignore[union-attr]
            raise SegmentCorrupt(f"{label}: {entry.count} elements of {entry.elem_size} bytes, "
                                 f"not one of {cls.segment_sizeof()}")  # type: ignore[union-attr]
        try:
            check(segment, entry.handle, ledger.claimer(f"{label}'s blocks"))
        except SegmentCorrupt as exc:
            message = str(exc)
            raise SegmentCorrupt(message if label in message else f"{label}: {message}") from exc
        except (InvalidPointer, *_DAMAGE) as exc:
            raise SegmentCorrupt(f"{label}: {type(exc).__name__}: {exc}") from exc
