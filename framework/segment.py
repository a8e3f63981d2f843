# cython: annotation_typing=False
"""The segment manager: storage + algorithm + named-object index, behind Boost's API.

A ``Segment`` holds a ``Storage`` (the bytes), the bound ``MemoryAlgorithm`` and the offset of
the name index; all three are re-derived from the header on open, so a byte copy, another
process or a later run sees the same segment. Objects handed out are live views of the bytes:
ctypes objects and numpy arrays (``segalloc.arrays``) over the buffer, read-only twins of them
in a read-only segment (``segalloc.readonly``), and ``segalloc.exports`` counts them so that
memory never moves under one. Every public operation validates its arguments
first and runs under the storage's lock, which excludes other threads and processes.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import struct
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Concatenate, Generic, Literal, NoReturn, ParamSpec, TypeVar, overload

from segalloc import arrays, objects
from segalloc.core import SegmentCore, check_handle, check_size
from segalloc.deep_check import check_index_and_objects
from segalloc.errors import (
    BadAlloc,
    InvalidPointer,
    InvalidSegment,
    NameExists,
    ReadOnlySegment,
    SegmentCorrupt,
)
from segalloc.exports import Exports
from segalloc.header import DIRTY_AT, HEADER_SIZE, SegmentHeader
from segalloc.interfaces import Command, MemoryAlgorithm, Mode, Storage
from segalloc.journal import ENTRIES_PER_CALL, Journal
from segalloc.names import ENTRY_SIZE, Entry, InstanceType, NameIndex, entry_bytes
from segalloc.plugins import plugins
from segalloc.readonly import read_only_twin, writable_type

__all__ = ["ANONYMOUS", "DEFAULT_ALGORITHM", "UNIQUE", "NamedObject", "NamedSegment", "Segment"]

DEFAULT_ALGORITHM = "best_fit"

#: bound on the ``.base`` chain from a numpy view to the array a segment handed out (numpy
#: collapses chains, so one or two hops in practice)
_MAX_BASE_HOPS = 8
#: errors a damaged segment can provoke in code that trusts its bytes
_DAMAGE = (IndexError, struct.error, OverflowError, ValueError, UnicodeDecodeError)


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: name sentinel: one instance per type, keyed by the type's qualified name
UNIQUE: Any = _Sentinel("UNIQUE")
#: name sentinel: an object with no name, reachable only through its handle
ANONYMOUS: Any = _Sentinel("ANONYMOUS")


@dataclass(frozen=True)
class NamedObject:
    """One entry of ``named_objects()`` / ``unique_objects()``."""

    name: str
    handle: int
    count: int
    type_id: str


def _check_alignment(alignment: object) -> int:
    check_size(alignment, "alignment")
    assert isinstance(alignment, int)
    if alignment == 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")
    return alignment


def smallest_journaled_size(algorithm: str) -> int:
    """The smallest shared-memory or mapped-file segment ``algorithm`` can format: its region,
    the segment header and the journal's base extent (found by bisection on a scratch buffer,
    only when a request was refused)."""
    cls = plugins().algorithm(algorithm)

    def fits(size: int) -> bool:
        buf = memoryview(bytearray(size))
        try:
            alg = cls.format(buf, HEADER_SIZE, size - HEADER_SIZE)
        except ValueError:
            return False
        return bool(Journal.create(buf, alg))

    low, high = HEADER_SIZE, (HEADER_SIZE + cls.MIN_SEGMENT_SIZE + 4096) & -8
    while not fits(high):
        low, high = high, 2 * high
    while high - low > 8:
        middle = (low + high) // 2 & -8
        low, high = (low, middle) if fits(middle) else (middle, high)
    return high


class _Access:
    """``with segment._reading`` / ``segment._writing``: takes the storage lock; at the outermost
    level first repairs what a process that died holding it left, and last commits (or, when
    the operation raised, rolls back) the journal transaction. In a segment without a journal,
    the first writing level records the old values of what it changes, and writes them back
    when it raises."""

    __slots__ = ("_held", "_segment", "_write")

    def __init__(self, segment: Segment, *, write: bool) -> None:
        self._segment = segment
        self._write = write
        self._held: list[Any] = []

    def __enter__(self) -> None:
        segment = self._segment
        self._held.append(segment._enter(self._write))
        if self._write and not segment._journaled and not segment._undo_depth:
            segment._undo_depth = segment._depth
            segment._words.record_undo()

    def __exit__(self, kind: type[BaseException] | None, error: object, trace: object) -> None:
        if not self._held:  # entered in the parent before a fork: not this process's section
            return
        segment = self._segment
        if segment._undo_depth == segment._depth:
            segment._undo_depth = 0
            segment._words.finish_undo(rollback=kind is not None)
        segment._leave(self._held.pop(), kind is not None, error)


_SegmentT = TypeVar("_SegmentT", bound="Segment")
_P = ParamSpec("_P")
_R = TypeVar("_R")


class _RegisteredStorage:
    """``Segment.storage_class``: the storage plugin that the class's ``backend`` names, looked
    up in the plugin host when used, so the core never imports ``segalloc.backends``. (The
    managed class made for a third-party backend binds its ``storage_class`` directly.)"""

    def __get__(self, segment: object, owner: type[Segment]) -> type[Storage]:
        backend = getattr(owner, "backend", None)
        if backend is None:
            raise AttributeError(f"{owner.__name__} names no storage backend; use a managed class "
                                 "(ManagedHeapMemory, ManagedSharedMemory, ...)")
        return plugins().backend(backend)


#: every open segment of this process, so that a forked child can drop its parent's sections
_OPEN_SEGMENTS: weakref.WeakSet[Segment] = weakref.WeakSet()


def _forget_parent_sections() -> None:
    """In a forked child: the sections (and the transaction) other threads of the parent had
    open are not the child's; its own operations start afresh and commit on their own."""
    for segment in list(_OPEN_SEGMENTS):
        segment._forget_sections()


os.register_at_fork(after_in_child=_forget_parent_sections)


class Segment(SegmentCore):
    """A managed memory segment over any storage (the managed classes add the constructor)."""

    #: the registered storage plugin holding the bytes (``"heap"``, ...); each managed class names one
    backend: ClassVar[str]
    storage_class = _RegisteredStorage()

    def __init__(self, *args: Any, algorithm: str | None = None, **kwargs: Any) -> None:
        storage = self.storage_class.open(*args, **kwargs)
        self._attach_storage(storage, algorithm)

    @classmethod
    def from_storage(cls: type[_SegmentT], storage: Storage, algorithm: str | None = None) -> _SegmentT:
        """Format (if the storage was just created) or open the segment in ``storage``."""
        segment = cls.__new__(cls)
        segment._attach_storage(storage, algorithm)
        return segment

    def _attach_storage(self, storage: Storage, algorithm: str | None) -> None:
        self._storage = storage
        #: bumped whenever the memory moves, so proxies can tell they are stale
        self.generation = 0
        #: what recovery did when this segment was opened after a crash (None: nothing)
        self.recovered: str | None = None
        self._depth = self._undo_depth = 0
        self._closed = False
        self._reading = _Access(self, write=False)
        self._writing = _Access(self, write=True)
        #: the ctypes objects, arrays and buffer views handed out (the grow rule)
        self._exports = Exports()
        _OPEN_SEGMENTS.add(self)
        try:
            with storage.lock():
                if storage.created:
                    self._format(algorithm or DEFAULT_ALGORITHM)
                else:
                    self._open(algorithm)
        except BaseException:
            if storage.created:
                storage.discard()
            else:
                storage.close()
            raise

    # -- formatting and opening ---------------------------------------------------------
    def _format(self, algorithm: str) -> None:
        cls = plugins().algorithm(algorithm)
        buf = self._storage.buffer
        region = len(buf) - HEADER_SIZE
        if region < cls.MIN_SEGMENT_SIZE:
            raise ValueError(
                f"segment size {len(buf)} is too small for algorithm {algorithm!r}: "
                f"it needs at least {HEADER_SIZE + cls.MIN_SEGMENT_SIZE} bytes"
            )
        alg = cls.format(buf, HEADER_SIZE, region)
        root = NameIndex.create(buf)
        journal = 0
        if self._storage.named:
            journal = Journal.create(buf, alg)
            if not journal:
                raise ValueError(
                    f"segment size {len(buf)} is too small for a journaled {algorithm!r} segment: "
                    f"it needs at least {smallest_journaled_size(algorithm)} bytes"
                )
        SegmentHeader(len(buf), cls.name, cls.layout_version, root, journal).write(buf)
        self._bind(buf, alg, root, journal)

    def _open(self, expected: str | None) -> None:
        buf = self._storage.buffer
        header, tail = self._read_header(buf)
        if tail and self._storage.read_only:
            buf, tail = buf[: len(buf) - tail], 0  # a read-only view leaves the tail alone
        if expected is not None and expected != header.algorithm:
            raise InvalidSegment(
                f"segment was made by algorithm {header.algorithm!r}, not {expected!r}"
            )
        known = plugins().algorithms
        cls = known.get(header.algorithm)
        if cls is None:
            raise InvalidSegment(
                f"segment was made by algorithm {header.algorithm!r}, which is not installed "
                f"(installed: {', '.join(known) or 'none'})"
            )
        if cls.layout_version != header.layout_version:
            raise InvalidSegment(
                f"segment uses {header.algorithm!r} layout version {header.layout_version}; "
                f"the installed plugin reads version {cls.layout_version}"
            )
        if header.index_offset == 0:
            raise SegmentCorrupt("segment header has no named-object index")
        journal = Journal(buf, 0 if buf.readonly else header.journal_offset)
        # before attaching: the algorithm may be half changed
        self.recovered = journal.recover() or self.recovered
        try:
            alg = cls.attach(buf, HEADER_SIZE)
        except SegmentCorrupt:
            raise
        except _DAMAGE as exc:
            raise SegmentCorrupt(f"algorithm {cls.name!r} cannot attach: {exc}") from exc
        if alg.size != len(buf) - tail - HEADER_SIZE:
            raise SegmentCorrupt(
                f"algorithm region is {alg.size} bytes but the header leaves "
                f"{len(buf) - tail - HEADER_SIZE}"
            )
        if self._storage.named and not self._storage.read_only and not header.journal_offset:
            header = header.replace(journal_offset=Journal.create(buf, alg))
            header.write(buf)
        self._bind(buf, alg, header.index_offset, header.journal_offset)
        if self._journal.leftovers():
            self._journal.give_back()
        if tail:
            self._take_in_tail(tail)
        if self.recovered is not None:  # once the header and the object agree again
            self._verify_recovered()

    def _read_header(self, buf: memoryview) -> tuple[SegmentHeader, int]:
        """The validated header and the ``tail``: bytes of a named backing object past the size
        the header gives, which an interrupted class-level grow (object extended, header not yet)
        or shrink (header cut, object not yet) leaves. A resize killed while rewriting the
        header inside its transaction leaves it half written, so a pending transaction is
        rolled back first, its journal found through the header's stored offset (the journal
        block's own magic vouches for it)."""
        total, journal_offset = SegmentHeader.peek(buf)
        if not buf.readonly and HEADER_SIZE <= journal_offset < len(buf):
            word = int.from_bytes(buf[DIRTY_AT : DIRTY_AT + 8], "little")
            if word:
                self.recovered = Journal(buf, journal_offset).recover()
                total, _ = SegmentHeader.peek(buf)
        resizable = self._storage.named and HEADER_SIZE <= total < len(buf)
        tail = len(buf) - total if resizable else 0
        return SegmentHeader.read(buf, len(buf) - tail), tail

    def _take_in_tail(self, tail: int) -> None:
        """Give the algorithm the last ``tail`` bytes of the buffer, which the header does not
        count yet, and count them: one transaction, so a kill inside leaves the tail out again
        (and the next opener takes it in)."""
        with self._writing:
            self._journal.preserve(0, DIRTY_AT)
            self._alg.grow(tail)
            self._rewrite_header()

    def _give_back_tail(self) -> int:
        """Shrink the algorithm's region and the header's size to fit, in one transaction;
        the new size, which the backing object is then cut to."""
        with self._writing:
            region = self._alg.shrink_to_fit()
            self._journal.preserve(0, DIRTY_AT)
            self._header().replace(total_size=HEADER_SIZE + region).write(self._buf)
        self.flush()
        return HEADER_SIZE + region

    def _bind(self, buf: memoryview, alg: MemoryAlgorithm, index_root: int, journal: int) -> None:
        self._buf = buf
        #: what ctypes objects are laid over (ctypes needs a writable buffer; see
        #: ``Storage.object_buffer``): the bytes themselves unless read-only
        self._objects_buf = self._storage.object_buffer if buf.readonly else buf
        self._alg = alg
        # a read-only mapping is never written, so it needs no logging view (which ctypes
        # could not lay over it anyway); an interrupted operation still shows in its dirty word
        self._journal = Journal(buf, 0 if buf.readonly else journal)
        alg.words = self._journal.words  # one view of the words for the whole segment
        if self._journal.active:
            self._journal.attach(alg)
        self._index = NameIndex(buf, alg, index_root, self._journal.words)
        self._index.safe_point = self._journal.ensure
        self._bind_core(self._storage, alg, self._journal, len(buf))

    def _recover(self) -> None:
        """Undo what a process that died holding the lock left half done (then check the
        whole segment), or give back the extents a commit left linked."""
        journal = self._journal
        if journal.pending():
            self.recovered = journal.recover()
            self._verify_recovered()
        if journal.leftovers():
            journal.give_back()

    def _forget_sections(self) -> None:
        if self._undo_depth:  # a parent thread's operation, half done in this copy: undone
            self._undo_depth = 0
            self._words.finish_undo(rollback=True)
        self._depth = 0
        self._reading._held.clear()
        self._writing._held.clear()
        if not self._closed and self._journal.active:
            self._journal.forget()

    def _verify_recovered(self) -> None:
        """After a rollback: the deep check, so that "recovered" means verified."""
        try:
            self.verify()
        except InvalidSegment as exc:
            raise SegmentCorrupt(f"{self.recovered}, but the segment does not verify: {exc}") from exc

    def _header(self) -> SegmentHeader:
        return SegmentHeader.read(self._buf, len(self._buf))

    def _rewrite_header(self) -> None:
        alg = self._alg
        SegmentHeader(len(self._buf), alg.name, alg.layout_version, self._index.root,
                      self._journal.offset).write(self._buf)

    # -- properties ----------------------------------------------------------------------
    @property
    def algorithm(self) -> MemoryAlgorithm:
        """The bound algorithm (rebound when the memory moves: do not keep it across ``grow``)."""
        return self._alg

    @property
    def storage(self) -> Storage:
        """The backend object holding the bytes."""
        return self._storage

    @property
    def buffer(self) -> memoryview:
        """The whole segment's bytes (invalid after a relocating ``grow``)."""
        return self._buf

    @property
    def read_only(self) -> bool:
        """True when the segment refuses changes."""
        return self._storage.read_only

    @property
    def lock_timeout(self) -> float | None:
        """Seconds each operation waits for the lock before ``LockTimeout``, which names the
        holder (None: for ever; shared memory and mapped files; set at open with ``timeout=``)."""
        return self._storage.lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, timeout: float | None) -> None:
        self._storage.lock_timeout = timeout

    def locked(self) -> _Access:
        """``with seg.locked():`` holds the segment's lock (threads and processes) across
        several reads, so they see one consistent state."""
        return self._reading

    def transaction(self) -> _Access:
        """``with seg.transaction():`` makes several operations one: they all take effect, or,
        if the block raises, none does; in a segment with a journal (shared memory, mapped
        files) also when the process dies inside it. Also holds the lock throughout."""
        return self._writing

    def reserve_journal(self, entries: int = 0) -> None:
        """Make room in the undo journal for ``entries`` more logged writes: in-segment
        structures call it before a long run of writes or allocator calls, at a moment when
        the algorithm's structures are whole (a no-op in a segment without a journal)."""
        self._journal.ensure(entries)

    @property
    def words(self) -> Any:
        """The segment's 64-bit word view for in-segment structures built on top of it
        (containers): writes through it inside a transaction are journaled."""
        return self._journal.words

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` as part of the current transaction: on rollback the
        bytes it covered come back (use it for bytes of blocks allocated in the same
        transaction)."""
        check_handle(offset)
        if not 0 <= offset <= offset + len(data) <= len(self._buf):
            raise InvalidPointer(f"bytes [{offset}, {offset + len(data)}) are not inside the segment")
        with self._writing:
            self._store(offset, data)

    def get_size(self) -> int:
        """Bytes in the segment, header included (Boost's ``get_size``)."""
        return len(self._buf)

    def get_free_memory(self) -> int:
        """Free bytes (Boost's ``get_free_memory``)."""
        with self._reading:
            return self._alg.free_memory

    size = property(get_size, doc="Bytes in the segment, header included.")
    free_memory = property(get_free_memory, doc="Free bytes.")

    # -- raw allocation (allocate and deallocate: SegmentCore's hot path) ----------------
    @overload
    def allocate_aligned(self, size: int, alignment: int, *, nothrow: Literal[False] = False) -> int: ...
    @overload
    def allocate_aligned(self, size: int, alignment: int, *, nothrow: bool) -> int | None: ...

    def allocate_aligned(self, size: int, alignment: int, *, nothrow: bool = False) -> int | None:
        """Like ``allocate`` with the handle (and its address, up to the storage's base
        alignment) a multiple of ``alignment``."""
        check_size(size, "size")
        _check_alignment(alignment)
        with self._writing:
            fits = size <= len(self._buf) and alignment <= len(self._buf)
            offset = self._alg.allocate_aligned(size, alignment) if fits else None
        return self._result(offset, nothrow, f"cannot allocate {size} bytes aligned to {alignment}")

    @staticmethod
    def _result(offset: int | None, nothrow: bool, why: str) -> int | None:
        if offset is None and not nothrow:
            raise BadAlloc(why)
        return offset

    def usable_size(self, handle: int) -> int:
        """Bytes the block at ``handle`` really holds (Boost's ``size(ptr)``)."""
        check_handle(handle)
        with self._reading:
            return self._alg.usable_size(handle)

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None = None
    ) -> tuple[int | None, int]:
        """Boost's ``allocation_command``; returns ``(handle, received_size)``.

        Backwards expansion moves the old contents to the new start, so the caller always finds
        its data at the returned handle; ``ZERO_MEMORY`` zeroes every byte it did not have.
        Failure raises ``BadAlloc`` unless ``NOTHROW`` is set, which returns ``(None, 0)``.
        """
        command = Command(command)
        check_size(limit_size, "limit_size")
        check_size(preferred_size, "preferred_size")
        expands = command & (Command.EXPAND_FWD | Command.EXPAND_BWD)
        shrinks = command & (Command.SHRINK_IN_PLACE | Command.TRY_SHRINK_IN_PLACE)
        if not command & (Command.ALLOCATE_NEW | expands | shrinks):
            raise ValueError(f"command {command!r} asks for no operation")
        if shrinks and (command & (Command.ALLOCATE_NEW | expands)):
            raise ValueError("a shrink cannot be combined with allocation or expansion")
        if (expands or shrinks) and reuse is None:
            raise ValueError(f"{command!r} needs the handle to reuse")
        if not shrinks and preferred_size < limit_size:
            preferred_size = limit_size
        with self._writing:
            old_size = 0
            if reuse is not None:
                check_handle(reuse)
                old_size = self._alg.usable_size(reuse)
            # a shrink to more than its limit fails as Boost's does (no algorithm can serve it,
            # and a caller shrinking to what it received may find it got less than preferred)
            if (preferred_size > limit_size) if shrinks else (limit_size > len(self._buf)):
                offset, received = None, 0
            else:
                preferred_size = min(preferred_size, len(self._buf))
                offset, received = self._alg.allocation_command(
                    command & ~Command.ZERO_MEMORY, limit_size, preferred_size, reuse
                )
            if offset is not None:
                moved_from = offset if reuse is None else reuse
                in_place = offset <= moved_from < offset + received
                if offset < moved_from < offset + received:  # expanded backwards: move the data
                    self._store(offset, bytes(self._buf[moved_from : moved_from + old_size]))
                if command & Command.ZERO_MEMORY and not shrinks:
                    kept = old_size if in_place else 0  # the caller's bytes, now at the start
                    self._store(offset + kept, bytes(received - kept))
        if offset is None and not command & Command.NOTHROW:
            raise BadAlloc(f"allocation_command {command!r} for {limit_size} bytes failed")
        return offset, received

    def allocate_many(
        self, sizes: Sequence[int] | int, count: int | None = None, *, nothrow: bool = False
    ) -> list[int]:
        """Several blocks in one call, all or nothing: ``allocate_many([8, 16])`` or
        ``allocate_many(100, count=16)``. With ``nothrow`` a failure returns ``[]``."""
        if isinstance(sizes, int) and not isinstance(sizes, bool):
            if count is None:
                raise TypeError("allocate_many(size, count): count is required with a single size")
            wanted = [check_size(sizes, "size")] * check_size(count, "count")
        else:
            if count is not None:
                raise TypeError("allocate_many(sizes): count goes only with a single size")
            assert not isinstance(sizes, int)
            wanted = [check_size(size, "size") for size in sizes]
        with self._writing:
            fits = sum(wanted) <= len(self._buf)
            if fits:
                self._journal.ensure(ENTRIES_PER_CALL * len(wanted))
            offsets = self._alg.allocate_many(wanted) if fits else None
        if offsets is None:
            if nothrow:
                return []
            raise BadAlloc(f"cannot allocate {len(wanted)} blocks of {sum(wanted)} bytes in all")
        return offsets

    def deallocate_many(self, handles: Sequence[int]) -> None:
        """Free several blocks; a bad handle among them raises and frees none."""
        checked = [check_handle(handle) for handle in handles]
        with self._writing:
            self._journal.ensure(ENTRIES_PER_CALL * len(checked))
            self._alg.deallocate_many(checked)

    # -- handles and views --------------------------------------------------------------
    def view(self, handle: int, size: int | None = None) -> memoryview:
        """A byte view of ``size`` bytes at ``handle`` (default: the block's usable size)."""
        check_handle(handle)
        if size is None:
            size = self.usable_size(handle)
        check_size(size, "size")
        if not 0 <= handle <= handle + size <= len(self._buf):
            raise InvalidPointer(f"bytes [{handle}, {handle + size}) are not inside the segment")
        return self._buf[handle : handle + size]

    def export_view(self, block: int, start: int, size: int) -> memoryview:
        """A live byte view of ``[start, start + size)`` (inside ``block``) that counts as a
        view of ``block``: ``grow`` and ``refuse_if_viewed(block)`` refuse while it lives.
        Read-only in a read-only segment. For containers that hand out their buffers."""
        if not 0 <= start <= start + size <= len(self._buf):
            raise InvalidPointer(f"bytes [{start}, {start + size}) are not inside the segment")
        if self._buf.readonly:
            return self._buf[start : start + size]
        carrier = (ctypes.c_ubyte * size).from_buffer(self._buf, start)
        return memoryview(self._exports.track(carrier, block)).cast("B")

    def refuse_if_viewed(self, block: int, operation: str) -> None:
        """``BufferError`` when views of ``block`` from ``export_view`` are alive (before
        moving or freeing it), as ``bytearray`` refuses to resize while exported."""
        self._exports.refuse(block, operation, "delete the views (memoryview, numpy array) "
                             "of it first")

    def _base_address(self) -> int:
        if self._objects_buf is None:
            raise ReadOnlySegment("this read-only buffer has no address to share")
        return ctypes.addressof(ctypes.c_char.from_buffer(self._objects_buf))

    def get_address_from_handle(self, handle: int) -> int:
        """The absolute address of ``handle`` in this process (valid until the memory moves)."""
        check_handle(handle)
        if not 0 <= handle < len(self._buf):
            raise InvalidPointer(f"handle {handle} is outside the segment")
        return self._base_address() + handle

    def get_handle_from_address(self, obj: Any) -> int:
        """The handle of a segment object (ctypes object or container proxy) or an address."""
        handle_attr = getattr(obj, "segment_handle", None)
        if isinstance(handle_attr, int):
            if getattr(obj, "segment", self) is not self:
                raise InvalidPointer(f"{obj!r} belongs to another segment")
            return handle_attr
        if isinstance(obj, int) and not isinstance(obj, bool):
            handle = obj - self._base_address()
        elif arrays.is_ndarray(obj):
            return self._array_handle(obj)
        elif objects.is_ctypes_object(obj):
            handle = ctypes.addressof(obj) - self._base_address()
        else:
            raise TypeError(f"cannot take the handle of a {type(obj).__name__}")
        if not 0 <= handle < len(self._buf):
            raise InvalidPointer("the object does not live in this segment")
        return handle

    def get_object_from_handle(self, cls: type, handle: int) -> Any:
        """The object of type ``cls`` at ``handle``: a constructed object (type-checked) or
        raw bytes of an allocation seen as ``cls``; ``numpy.ndarray`` for an array object."""
        check_handle(handle)
        if arrays.is_ndarray_type(cls):
            with self._reading:
                entry = self._entry_at(handle)
                assert entry is not None
                return self._array_at(handle, self._array_spec(entry))
        objects.check_type(cls)
        with self._reading:
            entry = self._entry_at(handle, required=False)
            if entry is not None:
                self._check_entry_type(entry, cls)
                return self._attach(cls, entry)
            if not objects.is_ctypes_type(cls):
                raise InvalidPointer(f"handle {handle} is not a constructed {cls.__qualname__}")
            if not 0 <= handle <= handle + objects.sizeof(cls) <= len(self._buf):
                raise InvalidPointer(f"handle {handle} is outside the segment")
            return self._ctypes_at(cls, handle)

    # -- named, unique and anonymous objects --------------------------------------------
    def _key(self, cls: type, name: object) -> tuple[InstanceType, bytes]:
        if name is UNIQUE:
            return InstanceType.UNIQUE, objects.type_name(cls).encode()
        if name is ANONYMOUS:
            return InstanceType.ANONYMOUS, b""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, UNIQUE or ANONYMOUS, not {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty (use ANONYMOUS for an unnamed object)")
        try:
            return InstanceType.NAMED, name.encode()
        except UnicodeEncodeError:
            raise ValueError(f"name {name!r} cannot be encoded as UTF-8") from None

    def construct(self, cls: type, name: Any, *args: Any, count: int | None = None) -> Any:
        """Build a ``cls`` (or an array of ``count``) in the segment under ``name``.

        ``args`` initialise every element (``cls(*args)``). ``NameExists`` when the name is
        taken; ``BadAlloc`` when there is no room (the segment is left unchanged).
        """
        objects.check_type(cls)
        kind, key = self._key(cls, name)
        if count is not None:
            check_size(count, "count")
            if not objects.is_ctypes_type(cls):
                raise TypeError(f"arrays of {cls.__qualname__} are not supported; use count=None")
        with self._writing:
            if kind is not InstanceType.ANONYMOUS and self._index.find(kind, key) is not None:
                raise NameExists(f"the segment already holds an object named {name!r}")
            return self._construct(cls, kind, key, args, count)

    def _indexed_key(self, cls: type, name: Any, call: str) -> tuple[InstanceType, bytes]:
        """The index key of a named or unique object (anonymous ones are not indexed)."""
        objects.check_type(cls)
        kind, key = self._key(cls, name)
        if kind is InstanceType.ANONYMOUS:
            raise ValueError(f"{call} needs a name or UNIQUE: anonymous objects are not indexed")
        return kind, key

    def _lookup(self, cls: type, kind: InstanceType, key: bytes) -> Entry | None:
        """The indexed entry, type-checked against ``cls`` (``TypeError`` on a mismatch)."""
        entry = self._index.find(kind, key)
        if entry is not None:
            self._check_entry_type(entry, cls)
        return entry

    def find_or_construct(self, cls: type, name: Any, *args: Any, count: int | None = None) -> Any:
        """The object named ``name`` if it exists (type-checked), else a new one, atomically."""
        kind, key = self._indexed_key(cls, name, "find_or_construct")
        with self._writing:
            entry = self._lookup(cls, kind, key)
            if entry is not None:
                return self._attach(cls, entry)
            return self._construct(cls, kind, key, args, count)

    def _construct(
        self, cls: type, kind: InstanceType, key: bytes, args: tuple[Any, ...], count: int | None
    ) -> Any:
        initial = bytes(cls(*args)) if args and objects.is_ctypes_type(cls) else None
        args = objects.prepared_args(cls, args)

        def build(handle: int) -> Any:
            if objects.is_ctypes_type(cls):
                return self._ctypes_at(cls, handle, count)
            return cls.segment_construct(self, handle, *args)  # type: ignore[attr-defined]

        return self._place(kind, key, build, is_array=count is not None,
                           elements=1 if count is None else count, elem_size=objects.sizeof(cls),
                           type_id=objects.type_id(cls), alignment=objects.alignment(cls),
                           initial=initial)

    def _place(
        self, kind: InstanceType, key: bytes, build: Callable[[int], Any], *, is_array: bool,
        elements: int, elem_size: int, type_id: str, alignment: int, initial: bytes | None = None,
    ) -> Any:
        """Allocate, write and index one object block, all or nothing; ``build(handle)`` makes
        what the caller gets (the block is freed again if it raises)."""
        encoded_id = type_id.encode()
        size = entry_bytes(elements, elem_size, key, encoded_id)
        alg = self._alg
        had_table = self._index.table_block() is not None
        if kind is not InstanceType.ANONYMOUS and not self._index.ensure_table():
            raise BadAlloc("no room for the named-object index")
        if size > len(self._buf) or alignment > len(self._buf):
            offset = None
        elif alignment > alg.ALIGNMENT:
            offset = alg.allocate_aligned(size, alignment)
        else:
            offset = alg.allocate(size)
        try:
            if offset is None:
                raise BadAlloc(f"no room for a {size}-byte object {key.decode(errors='replace')!r}")
            self._store(offset, NameIndex.entry_image(kind, is_array, elements, elem_size,
                                                      key, encoded_id, initial))
            obj = build(offset + ENTRY_SIZE)
        except BaseException:
            if offset is not None:
                alg.deallocate(offset)
            if not had_table:
                self._index.drop_table()
            raise
        if kind is not InstanceType.ANONYMOUS:
            self._index.link(offset, kind, key)
        return obj

    def _store(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` inside an operation, journaling the words it covers."""
        self._journal.preserve(offset, offset + len(data))  # a safe point too
        self._buf[offset : offset + len(data)] = data

    def _ctypes_at(self, cls: type, handle: int, count: int | None = None) -> Any:
        """The live ctypes object at ``handle``; in a read-only segment its read-only twin
        (``ReadOnlySegment`` on write), a copy only where the storage has no writable view
        of its bytes (an immutable buffer, whose bytes cannot change anyway)."""
        target: Any = cls if count is None else cls * count  # type: ignore[operator]
        if not self._buf.readonly:
            return self._exports.track(target.from_buffer(self._buf, handle), handle)
        twin: Any = read_only_twin(target)
        if self._objects_buf is None:
            return twin.from_buffer_copy(self._buf, handle)
        return twin.from_buffer(self._objects_buf, handle)

    def _attach(self, cls: type, entry: Entry) -> Any:
        if entry.elem_size != objects.sizeof(cls) or entry.count > len(self._buf):
            raise SegmentCorrupt(f"object {entry.display_name or entry.handle!r} claims "
                                 f"{entry.count} elements of {entry.elem_size} bytes, not of the "
                                 f"{objects.sizeof(cls)} its type has")
        if objects.is_ctypes_type(cls):
            return self._ctypes_at(cls, entry.handle, entry.count if entry.is_array else None)
        return cls.segment_attach(self, entry.handle)  # type: ignore[attr-defined]

    @staticmethod
    def _check_entry_type(entry: Entry, cls: type) -> None:
        if entry.type_id != objects.type_id(cls):
            what = f"object {entry.display_name or entry.handle!r}"
            raise TypeError(objects.type_mismatch(what, entry.type_id, cls))

    def find(self, cls: type, name: Any) -> tuple[Any, int]:
        """``(object, count)`` for the object named ``name``, or ``(None, 0)``.

        ``TypeError`` when the object exists with another type.
        """
        kind, key = self._indexed_key(cls, name, "find")
        with self._reading:
            entry = self._lookup(cls, kind, key)
            if entry is None:
                return None, 0
            return self._attach(cls, entry), entry.count

    def destroy(self, cls: type, name: Any) -> bool:
        """Destroy the object named ``name``; False when there is none."""
        kind, key = self._indexed_key(cls, name, "destroy (use destroy_ptr for anonymous ones)")
        with self._writing:
            entry = self._lookup(cls, kind, key)
            if entry is None:
                return False
            self._destroy(cls, entry)
            return True

    def destroy_ptr(self, obj: Any) -> None:
        """Destroy the object ``obj`` (named, unique or anonymous) returned by this segment."""
        with self._writing:
            entry = self._entry_of(obj)
            if arrays.is_ndarray(obj):
                self._array_spec(entry)
                self._free_entry(entry)
                return
            cls = writable_type(type(obj))
            if entry.is_array:
                cls = cls._type_  # type: ignore[attr-defined]
            self._check_entry_type(entry, cls)
            self._destroy(cls, entry)

    def _destroy(self, cls: type, entry: Entry) -> None:
        if not objects.is_ctypes_type(cls):
            cls.segment_destroy(self, entry.handle)  # type: ignore[attr-defined]
        self._free_entry(entry)

    def _free_entry(self, entry: Entry) -> None:
        if entry.kind is not InstanceType.ANONYMOUS:
            self._index.unlink(entry)
        self._alg.deallocate(entry.offset)

    # -- numpy arrays (segalloc.arrays: the stored description and the views) ---------------
    def construct_array(
        self, name: Any, shape: Any, dtype: Any, *, align: int = arrays.DEFAULT_ALIGNMENT
    ) -> Any:
        """A new zeroed ``numpy.ndarray`` of ``shape`` and ``dtype`` (any fixed-size dtype,
        structured ones too) under ``name`` (a str, ``UNIQUE`` or ``ANONYMOUS``): a view of
        the segment's bytes, no copy, that another process finds with ``find_array``.
        Element 0 is aligned to ``align`` (and the dtype's alignment) from the segment start.
        ``NameExists`` / ``BadAlloc`` as ``construct``; ``ImportError`` without numpy."""
        spec, alignment = self._array_request(shape, dtype, align)
        kind, key = self._array_key(name)
        with self._writing:
            if kind is not InstanceType.ANONYMOUS and self._index.find(kind, key) is not None:
                raise NameExists(f"the segment already holds an object named {name!r}")
            return self._construct_array(kind, key, spec, alignment)

    def find_or_construct_array(
        self, name: Any, shape: Any, dtype: Any, *, align: int = arrays.DEFAULT_ALIGNMENT
    ) -> Any:
        """The array named ``name`` if it exists (``TypeError`` unless it has this shape and
        dtype), else a new one, atomically."""
        spec, alignment = self._array_request(shape, dtype, align)
        kind, key = self._array_key(name, "find_or_construct_array")
        with self._writing:
            entry = self._index.find(kind, key)
            if entry is None:
                return self._construct_array(kind, key, spec, alignment)
            found = self._array_spec(entry)
            if not found.same_array(spec):
                raise TypeError(f"array {name!r} is {found.describes()}, not {spec.describes()}")
            return self._array_at(entry.handle, found)

    def find_array(self, name: Any) -> Any:
        """The array named ``name`` (with its stored shape and dtype), or None."""
        kind, key = self._array_key(name, "find_array")
        with self._reading:
            entry = self._index.find(kind, key)
            return None if entry is None else self._array_at(entry.handle, self._array_spec(entry))

    def destroy_array(self, name: Any) -> bool:
        """Destroy the array named ``name``; False when there is none (``destroy_ptr(array)``
        destroys any array, anonymous ones too)."""
        kind, key = self._array_key(name, "destroy_array (use destroy_ptr for anonymous ones)")
        with self._writing:
            entry = self._index.find(kind, key)
            if entry is None:
                return False
            self._array_spec(entry)
            self._free_entry(entry)
            return True

    @staticmethod
    def _array_request(shape: Any, dtype: Any, align: int) -> tuple[arrays.ArraySpec, int]:
        _check_alignment(align)
        return arrays.ArraySpec.requested(shape, dtype, align)

    def _array_key(self, name: Any, indexed_call: str | None = None) -> tuple[InstanceType, bytes]:
        arrays.numpy()  # ImportError naming the extra before anything else
        if name is UNIQUE:
            return InstanceType.UNIQUE, arrays.UNIQUE_KEY
        if name is ANONYMOUS and indexed_call is not None:
            raise ValueError(f"{indexed_call} needs a name or UNIQUE: anonymous objects are "
                             "not indexed")
        return self._key(object, name)

    def _construct_array(
        self, kind: InstanceType, key: bytes, spec: arrays.ArraySpec, alignment: int
    ) -> Any:
        return self._place(kind, key, lambda handle: self._array_at(handle, spec),
                           is_array=False, elements=1, elem_size=spec.area,
                           type_id=spec.type_id(), alignment=alignment)

    @staticmethod
    def _array_spec(entry: Entry) -> arrays.ArraySpec:
        """The stored description of an array object (``TypeError`` for another object)."""
        if not entry.type_id.startswith(arrays.TYPE_PREFIX):
            raise TypeError(f"object {entry.display_name or entry.handle!r} is a "
                            f"{entry.type_id}, not a numpy array")
        return arrays.ArraySpec.stored(entry.type_id, entry.count * entry.elem_size)

    def _array_at(self, handle: int, spec: arrays.ArraySpec) -> Any:
        start = handle + spec.offset
        array, base = spec.view(self._buf[start : start + spec.nbytes])
        self._exports.track(base, handle)
        return array

    def _array_handle(self, array: Any) -> int:
        """The handle of the array object that ``array`` (or the array it views) belongs to."""
        view = array
        for _ in range(_MAX_BASE_HOPS):
            block = self._exports.block_of(view)
            if block is not None:
                return block
            view = getattr(view, "base", None)
        raise InvalidPointer("the array is not an array of this segment")

    def _entry_at(self, handle: int, *, required: bool = True) -> Entry | None:
        """The header of the constructed object whose data starts at ``handle``."""
        offset = handle - ENTRY_SIZE
        try:
            entry = self._index.read_entry(offset)
            self._alg.usable_size(offset)
        except InvalidPointer:
            if required:
                raise InvalidPointer(f"handle {handle} is not a constructed object") from None
            return None
        return entry

    def _entry_of(self, obj: Any) -> Entry:
        entry = self._entry_at(self.get_handle_from_address(obj))
        assert entry is not None
        return entry

    def get_instance_name(self, obj: Any) -> str | None:
        """The name ``obj`` was constructed under; the type's name if unique; None if anonymous."""
        with self._reading:
            return self._entry_of(obj).display_name

    def get_instance_type(self, obj: Any) -> InstanceType:
        """``InstanceType.NAMED``, ``UNIQUE`` or ``ANONYMOUS``."""
        with self._reading:
            return self._entry_of(obj).kind

    def get_instance_length(self, obj: Any) -> int:
        """The number of elements ``obj`` was constructed with (1 for a single object; a
        numpy array's ``size``)."""
        with self._reading:
            entry = self._entry_of(obj)
            if arrays.is_ndarray(obj):
                return math.prod(self._array_spec(entry).shape)
            return entry.count

    def _listing(self, kind: InstanceType) -> list[NamedObject]:
        with self._reading:
            return [
                NamedObject(entry.name.decode(), entry.handle, entry.count, entry.type_id)
                for entry in self._index.entries()
                if entry.kind is kind
            ]

    def named_objects(self) -> list[NamedObject]:
        """Every named object (Boost's ``named_begin()..named_end()``)."""
        return self._listing(InstanceType.NAMED)

    def unique_objects(self) -> list[NamedObject]:
        """Every unique instance (Boost's ``unique_begin()..unique_end()``)."""
        return self._listing(InstanceType.UNIQUE)

    def num_named_objects(self) -> int:
        """How many named objects the segment holds."""
        with self._reading:
            return self._index.counts()[0]

    def num_unique_objects(self) -> int:
        """How many unique instances the segment holds."""
        with self._reading:
            return self._index.counts()[1]

    def reserve_named_objects(self, count: int) -> None:
        """Size the name index for ``count`` objects now, so later constructs do not rehash."""
        check_size(count, "count")
        buckets = 1 << max(count - 1, 0).bit_length()
        with self._writing:
            if not self._index.rehash(buckets):
                raise BadAlloc(f"no room to index {count} named objects")

    reserve_unique_objects = reserve_named_objects

    # -- whole-segment operations -------------------------------------------------------
    def grow(self, extra: int) -> None:
        """Add ``extra`` bytes to a segment that can grow while open (heap). The memory moves,
        so ``BufferError`` while ctypes objects, numpy arrays or buffer views taken from the
        segment are alive (they would keep using the old copy); container proxies raise
        ``InvalidPointer`` afterwards: fetch them again from their handles."""
        check_size(extra, "extra")
        with self._writing:
            self._refuse_move("grow")
            try:
                self._storage.grow_in_place(extra)
            except NotImplementedError as exc:
                raise TypeError(f"{type(self).__name__} cannot grow while open: {exc}") from None
            buf = self._storage.buffer
            alg = type(self._alg).attach(buf, HEADER_SIZE)
            alg.grow(extra)
            self._bind(buf, alg, self._index.root, self._journal.offset)
            self._rewrite_header()
            self.generation += 1

    def shrink_to_fit(self) -> int:
        """Give the free tail back (heap); returns the new size. The memory moves: the same
        rule as ``grow``."""
        with self._writing:
            self._refuse_move("shrink_to_fit")
            region = self._alg.shrink_to_fit()
            try:
                self._storage.truncate(HEADER_SIZE + region)
            except NotImplementedError as exc:
                self._alg.grow(len(self._buf) - HEADER_SIZE - region)
                raise TypeError(f"{type(self).__name__} cannot shrink while open: {exc}") from None
            buf = self._storage.buffer
            self._bind(buf, type(self._alg).attach(buf, HEADER_SIZE), self._index.root,
                       self._journal.offset)
            self._rewrite_header()
            self.generation += 1
            return len(buf)

    def _refuse_move(self, operation: str) -> None:
        """The grow rule: memory never moves under a ctypes object, array or buffer view."""
        self._exports.refuse(None, f"{type(self).__name__}.{operation}",
                             "delete them (del obj) first and fetch them again afterwards "
                             "(container proxies need not be deleted)")

    def verify(self, *, deep: bool = True) -> None:
        """Check the header and the algorithm's structures and, unless ``deep=False``, the
        name index and every object found through it, containers included (links both ways,
        lengths, bucket tables, capacities, every block they own live and owned once: see
        ``segalloc.deep_check``); ``SegmentCorrupt`` (or ``InvalidSegment``) names the first
        fault and the object it is in. Bounded by what the segment really holds."""
        with self._reading:
            try:
                self._header()
                self._alg.verify()
                if deep:
                    check_index_and_objects(self, self._index)
            except InvalidPointer as exc:
                raise SegmentCorrupt(f"named object outside any live block: {exc}") from exc
            except _DAMAGE as exc:
                raise SegmentCorrupt(str(exc)) from exc

    def check_sanity(self, *, deep: bool = True) -> bool:
        """Boost's ``check_sanity``: True when ``verify(deep=deep)`` finds nothing wrong."""
        try:
            self.verify(deep=deep)
        except InvalidSegment:
            return False
        return True

    def all_memory_deallocated(self) -> bool:
        """True when only the segment's own bookkeeping (the name index) is allocated."""
        with self._reading:
            own = {self._index.table_block(), self._journal.offset or None}
            return all(offset in own for offset, _ in self._alg.allocated_blocks())

    def zero_free_memory(self) -> None:
        """Overwrite every free byte with zeros (before handing the segment to others)."""
        with self._writing:
            self._alg.zero_free_memory()

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        """``(handle, size)`` of every free block."""
        with self._reading:
            return iter(list(self._alg.free_blocks()))

    def flush(self) -> None:
        """Write changes through to the backing object (files); a no-op in memory."""
        self._storage.flush()

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    def close(self) -> None:
        """Unmap the segment and give its lock back; idempotent. Objects taken from it must not
        be used afterwards: one still alive keeps the mapping (and, for a shared-memory or file
        segment, the one descriptor ``mmap`` holds) until it goes, takes no lock, and does not
        count as mapping the segment, so a peer may resize it under the object."""
        if self._closed:
            return
        self._closed = True
        # drop every view of the mapping so the storage can unmap it now
        self._buf = memoryview(b"")
        self._objects_buf = None
        self._alg = self._index = self._journal = None  # type: ignore[assignment]
        self._kernel = None
        self._words = None  # type: ignore[assignment]
        self._storage.close()

    def __enter__(self: _SegmentT) -> _SegmentT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return f"<{type(self).__name__} {self._storage!r} closed>"
        return (
            f"<{type(self).__name__} {self._storage!r} algorithm={self._alg.name!r} "
            f"size={len(self._buf)}>"
        )


class _ClassLevel(Generic[_P, _R]):
    """A classmethod that an open segment refuses, saying how to call it: a named segment is
    resized only while no process maps it, through its class (as in Boost), so
    ``shm.grow(4096)`` on an open instance is a mistake the message should correct."""

    def __init__(self, method: Callable[Concatenate[Any, _P], _R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self._name = method.__name__

    @overload
    def __get__(self, segment: None, owner: type) -> Callable[_P, _R]: ...

    @overload
    def __get__(self, segment: object, owner: type) -> Callable[..., NoReturn]: ...

    def __get__(self, segment: object, owner: type) -> Callable[..., Any]:
        if segment is None:
            bound: Callable[_P, _R] = functools.partial(self._method, owner)
            return bound
        name = self._name

        def refuse(*args: Any, **kwargs: Any) -> NoReturn:
            shown = ", ".join(["name", *map(repr, args)])
            raise TypeError(f"{owner.__name__}.{name}() is class-level: a mapped segment cannot "
                            f"change size; close it and call {owner.__name__}.{name}({shown})")

        return refuse


class NamedSegment(Segment):
    """A segment whose backing object has a name (shared memory, a file): it is grown or shrunk
    only while no process maps it, through the class-level ``grow`` and ``shrink_to_fit``."""

    @classmethod
    def remove(cls, name: Any) -> bool:
        """Remove the backing object; False when there was none (Boost's ``remove``)."""
        return cls.storage_class.remove(name)

    @classmethod
    def _check_name(cls, name: object, call: str) -> None:
        if not isinstance(name, str) and not hasattr(name, "__fspath__"):
            raise TypeError(f"{cls.__name__}.{call} is class-level: close the segment and pass "
                            "its name")

    @_ClassLevel
    def grow(cls: type[NamedSegment], /, name: Any, extra: int, **options: Any) -> None:
        """Add ``extra`` bytes to the segment ``name`` (class-level, as in Boost), which no
        process may map (``BufferError``). ``options``: ``timeout`` for the lock,
        ``permissions`` / ``trust_foreign`` as for opening.

        Crash-safe: the object is extended first, then one transaction gives the algorithm the
        new tail and writes the header; a kill in between leaves a tail that the next opener
        takes in, a kill inside the transaction is rolled back (and the tail taken in)."""
        cls._check_name(name, "grow(name, extra)")
        check_size(extra, "extra")
        opening = {key: value for key, value in options.items() if key != "timeout"}
        with cls.storage_class.resizing(name, **options) as set_size:
            with cls(Mode.OPEN_ONLY, name, **opening) as segment:  # settles an earlier resize
                old = segment.get_size()
            set_size(old + extra)
            try:
                with cls(Mode.OPEN_ONLY, name, **opening) as grown:  # opening takes the tail in
                    grown.flush()
            except BaseException:
                set_size(old)  # the segment did not take the bytes in
                raise

    @_ClassLevel
    def shrink_to_fit(cls: type[NamedSegment], /, name: Any, **options: Any) -> int:
        """Give the free tail of the segment ``name``, which no process may map, back; returns
        its new size. ``options`` as for ``grow``.

        Crash-safe: one transaction shrinks the algorithm's region and the header, then the
        object is cut; a kill in between leaves a tail that the next opener takes in again."""
        cls._check_name(name, "shrink_to_fit(name)")
        opening = {key: value for key, value in options.items() if key != "timeout"}
        with cls.storage_class.resizing(name, **options) as set_size:
            with cls(Mode.OPEN_ONLY, name, **opening) as segment:
                new_size = segment._give_back_tail()
            set_size(new_size)
        return new_size
