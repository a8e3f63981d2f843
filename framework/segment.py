# cython: annotation_typing=False
"""The raw segment: storage + algorithm + journal, behind Boost's allocation API.

A ``RawSegment`` holds a ``Storage`` (the bytes), the bound ``MemoryAlgorithm``, the undo
journal and the offset of the name index, all re-derived from the header on open, so a byte
copy, another process or a later run sees the same segment. It formats and opens segments,
runs every operation in the locked, journaled section, and gives raw allocation
(``allocate*``, ``allocation_command``, ``deallocate*``), views of blocks, addresses, growth and
the checks; ``segalloc.manager.Segment`` layers the named objects on it, as Boost's segment
manager layers them on its memory algorithm. Every public operation validates its arguments
first and runs under the storage's lock, which excludes other threads and processes.
"""

from __future__ import annotations

import ctypes
import os
import struct
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal, TypeVar, overload

from segalloc.core import SegmentCore, check_handle, check_size
from segalloc.deep_check import check_index_and_objects
from segalloc.errors import (
    BadAlloc,
    InvalidPointer,
    InvalidSegment,
    ReadOnlySegment,
    SegmentCorrupt,
)
from segalloc.exports import Exports
from segalloc.header import DIRTY_AT, HEADER_SIZE, SegmentHeader
from segalloc.interfaces import Command, MemoryAlgorithm, Storage
from segalloc.journal import ENTRIES_PER_CALL, Journal
from segalloc.names import NameIndex
from segalloc.plugins import plugins
from segalloc.words import Words

__all__ = ["DEFAULT_ALGORITHM", "RawSegment", "check_alignment", "smallest_journaled_size"]

DEFAULT_ALGORITHM = "best_fit"

#: errors a damaged segment can provoke in code that trusts its bytes
_DAMAGE = (IndexError, struct.error, OverflowError, ValueError, UnicodeDecodeError)


def check_alignment(alignment: object) -> int:
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
    the operation raised, rolls back) the journal transaction, or in a segment without a
    journal the undo it recorded (``SegmentCore.enter_section``)."""

    __slots__ = ("_held", "_segment", "_write")

    def __init__(self, segment: RawSegment, *, write: bool) -> None:
        self._segment = segment
        self._write = write
        self._held: list[Any] = []

    def __enter__(self) -> None:
        self._held.append(self._segment._enter(self._write))

    def __exit__(self, kind: type[BaseException] | None, error: object, trace: object) -> None:
        if not self._held:  # entered in the parent before a fork: not this process's section
            return
        self._segment._leave(self._held.pop(), kind is not None, error)


_SegmentT = TypeVar("_SegmentT", bound="RawSegment")


class _RegisteredStorage:
    """``Segment.storage_class``: the storage plugin that the class's ``backend`` names, looked
    up in the plugin host when used, so the core never imports ``segalloc.backends``. (The
    managed class made for a third-party backend binds its ``storage_class`` directly.)"""

    def __get__(self, segment: object, owner: type[RawSegment]) -> type[Storage]:
        backend = getattr(owner, "backend", None)
        if backend is None:
            raise AttributeError(f"{owner.__name__} names no storage backend; use a managed class "
                                 "(ManagedHeapMemory, ManagedSharedMemory, ...)")
        return plugins().backend(backend)


#: every open segment of this process, so that a forked child can drop its parent's sections
_OPEN_SEGMENTS: weakref.WeakSet[RawSegment] = weakref.WeakSet()


def _forget_parent_sections() -> None:
    """In a forked child: the sections (and the transaction) other threads of the parent had
    open are not the child's; its own operations start afresh and commit on their own."""
    for segment in list(_OPEN_SEGMENTS):
        segment._forget_sections()


os.register_at_fork(after_in_child=_forget_parent_sections)


class RawSegment(SegmentCore):
    """A segment over any storage: allocation, handles, views, growth and checks (the named
    objects are ``segalloc.manager.Segment``'s; the managed classes add the constructor)."""

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
            # not open: a forked child must not meet it among the open segments (its
            # ``_forget_sections`` would fail there and leave the others' sections in the child)
            self._closed = True
            _OPEN_SEGMENTS.discard(self)
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
        self._version_open = False  # the parent's section closes it
        if self._thread_lock is not None:  # held, perhaps, by a thread the child does not have
            self._thread_lock.reset()
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
    def words(self) -> Words:
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
        check_alignment(alignment)
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

    def _store(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` inside an operation, journaling the words it covers."""
        self._journal.ensure((len(data) + 15) >> 3)  # a safe point: room for every word
        self._words.store_bytes(offset, bytes(data))

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
