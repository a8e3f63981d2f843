"""The section every segment operation runs in, and the allocation hot path (compiled).

Each public operation of a segment takes the storage's lock; the outermost section first
repairs what a process that died holding the lock left half done, and last commits (or, when
the operation raised, rolls back) the journal transaction. ``SegmentCore`` keeps that state in C
fields (the header check on the hot path is one word read) and runs ``allocate`` /
``deallocate`` through the algorithm's C entry points (``segalloc.kernel``) when it has them;
``segalloc.segment.RawSegment`` derives from it and keeps everything else.

On storage only this process reaches (``Storage.in_process``: heap, a caller's buffer) the lock
only excludes this process's threads. A compiled ``allocate`` / ``deallocate`` (this module and
the algorithm's kernel both compiled) runs whole in C,
holding the GIL, when no thread is inside a section of the segment and no store calls back into
Python (no journal, no undo being recorded, no observer): no other thread can run meanwhile, so
it skips the lock (``bare``). A thread inside a section counts in ``_depth`` from the moment its
lock is taken, before it touches a word, so such an operation never lands in the middle of one.

On storage whose lock has a version word (``Storage.version_word``: a shared-memory or file
segment's mutex, ``segalloc.robust``), every section that may write (``write``, a repair, a
word left odd by a writer that died) makes it odd before its first store and even after its
last, so readers may read without the lock: ``read_version`` before, ``read_holds`` after,
and the locked read when a writer came between (``segalloc.containers.proxy._Proxy.read``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Literal, overload

import cython

from segalloc.errors import BadAlloc, InvalidPointer, ReadOnlySegment
from segalloc.journal import EXTENSION_ENTRIES, HEADROOM, M_NEXT
from segalloc.kernel import AlgorithmKernel, kernel_of, runs_in_c
from segalloc.robust import RobustMutex
from segalloc.thread_lock import ThreadLock
from segalloc.words import DIRTY_WORD

if not cython.compiled:  # compiled, the C forms come from robust.pxd
    from segalloc.robust import version_close, version_holds, version_open, version_read

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from segalloc.interfaces import MemoryAlgorithm, Storage
    from segalloc.journal import Journal
    from segalloc.words import Words

    _Answer = TypeVar("_Answer")

__all__ = ["SegmentCore", "check_handle", "check_size"]

_DIRTY = cython.declare(cython.Py_ssize_t, DIRTY_WORD)
#: the journal room a safe point needs (``Journal.ensure``): idle, and inside a transaction
_IDLE_ROOM = cython.declare(cython.Py_ssize_t, HEADROOM)
_BUSY_ROOM = cython.declare(cython.Py_ssize_t, HEADROOM + EXTENSION_ENTRIES)
#: False on a free-threaded Python, where holding the GIL excludes no other thread
_GIL = cython.declare(cython.bint, getattr(sys, "_is_gil_enabled", lambda: True)())


def check_size(value: object, what: str) -> int:
    """``value`` as a size: a non-negative int (``TypeError`` / ``ValueError`` otherwise)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def check_handle(handle: object) -> int:
    """``handle`` as an offset: an int (``TypeError`` otherwise)."""
    if not isinstance(handle, int) or isinstance(handle, bool):
        raise TypeError(f"handle must be an int offset, not {type(handle).__name__}")
    return handle


@cython.cclass
class SegmentCore:
    """The lock-and-journal section of a segment and its allocation hot path."""

    if TYPE_CHECKING:  # the C fields (core.pxd), as type checkers see them
        _storage: Storage
        _alg: MemoryAlgorithm
        _journal: Journal
        _kernel: AlgorithmKernel | None
        _words: Words
        _size: int
        _depth: int
        _undo_depth: int
        _extent_link: int
        _closed: bool
        _read_only: bool
        _journaled: bool
        _bare: bool
        _thread_lock: ThreadLock | None
        _version_at: int
        _version_open: bool
        generation: int

    def _bind_core(self, storage: Any, algorithm: Any, journal: Any, size: int) -> None:
        """Take the bound parts (after every open, grow or move of the memory)."""
        self._storage = storage
        self._alg = algorithm
        self._kernel = kernel_of(algorithm)
        self._journal = journal
        self._words = journal.words
        self._size = size
        self._read_only = bool(storage.read_only)
        self._journaled = bool(journal.active)
        self._extent_link = (journal.offset >> 3) + M_NEXT if self._journaled else 0
        self._bare = cython.compiled and _GIL and bool(storage.in_process) and \
            self._kernel is not None and runs_in_c(self._kernel) and not self._journaled
        lock = storage.lock() if storage.in_process else None
        #: the storage's lock when it is a ``ThreadLock`` that ``lock()`` always returns: taken
        #: and given back in C
        self._thread_lock = lock if isinstance(lock, ThreadLock) else None
        #: the address of the lock's version word (0: none; readers lock), and whether this
        #: process's open section has made it odd
        self._version_at = storage.version_word
        self._version_open = False

    def _recover(self) -> None:
        """Undo what a process that died holding the lock left half done (the segment's)."""
        raise NotImplementedError

    def _enter(self, write: bool) -> Any:
        """``enter_section`` for Python callers (``Segment``'s ``with`` sections: operations of
        several steps, which record undo when the segment has no journal)."""
        return self.enter_section(write, write)

    def _leave(self, lock: Any, failed: bool, error: Any = None) -> None:
        """``leave_section`` for Python callers."""
        self.leave_section(lock, failed, error)

    def read_optimistically(self, read: Callable[[], _Answer]) -> _Answer:
        """What ``read()`` (segment reads, no store) gives: first without the lock, kept when
        no writer came meanwhile (``read_version`` / ``read_holds``); otherwise, or when that
        read failed (a writer's half-done state may look like damage), under the lock, which
        gives the answer or the error a locked read gives. (A container's reads inline the
        same steps in C: ``segalloc.containers.proxy._Proxy.read``.)"""
        seen: cython.longlong = self.read_version()
        if seen >= 0:
            try:
                answer = read()
            except Exception:  # a writer's half-done state: read again under the lock
                pass
            else:
                if self.read_holds(seen):
                    return answer
        lock = self.enter_section(False, False)
        try:
            answer = read()
        except BaseException as exc:
            self.leave_section(lock, True, exc)
            raise
        self.leave_section(lock, False)
        return answer

    def enter_section(self, write: cython.bint, record: cython.bint) -> Any:
        """Open a section: the lock taken, recovery done at the outermost level, a safe point
        for the journal when writing; the lock, for ``_leave``. With ``record``, in a segment
        without a journal, the first such level keeps the old value of every word changed
        under it, so that leaving it failed writes them back (a lone algorithm call, which
        checks before it writes, needs none)."""
        self.check_usable(write)
        lock = self.take_lock()
        self._depth += 1  # before anything that may let another thread run (see ``bare``)
        try:
            if self._depth == 1:
                signed: cython.const[cython.longlong][::1] = self._words.signed
                if self._version_at and version_read(self._version_at) & 1:
                    self.open_version()  # a writer died inside: closed when this one ends
                if signed[_DIRTY] or (self._journaled and signed[self._extent_link]):
                    self.open_version()
                    self._recover()
            if write:
                self.open_version()
                if self._journaled and self.short_of_room():
                    self._journal.ensure()  # a safe point: the algorithm's structures are whole
        except BaseException:
            self._depth -= 1
            if not self._depth:
                self.close_version()
            self.give_lock(lock, None)
            raise
        if record and not self._journaled and not self._undo_depth:
            self._undo_depth = self._depth
            self._words.record_undo()
        return lock

    def leave_section(self, lock: Any, failed: cython.bint, error: Any = None) -> cython.int:
        """Close a section; the outermost one commits the transaction, or rolls it back when
        the operation ``failed`` (the level that began recording undo does the same with it)."""
        depth: cython.Py_ssize_t = self._depth
        self._depth = depth - 1
        try:
            if self._undo_depth == depth:
                self._undo_depth = 0
                self._words.finish_undo(failed)
            if depth == 1 and self._words.signed[_DIRTY]:
                if failed or not self.plain_commit():
                    self._journal.finish(failed=failed)
                else:
                    self._words.commit()
        finally:
            if depth == 1:
                self.close_version()
            self.give_lock(lock, error if failed else None)
        return 0

    def open_version(self) -> cython.int:
        """Before this section's first store: the version word odd (once a section)."""
        if self._version_at and not self._version_open:
            version_open(self._version_at)
            self._version_open = True
        return 0

    def close_version(self) -> cython.int:
        """After the outermost section's last store, holding the lock: the version word even."""
        if self._version_open:
            self._version_open = False
            version_close(self._version_at)
        return 0

    def read_version(self) -> cython.longlong:
        """The version word's value to read against without the lock, or -1 when a reader must
        lock: no version word, a writer inside (odd), a transaction to repair, or a section
        of this process open (its own thread's, or one another thread holds the lock for)."""
        if not self._version_at or self._depth or self._closed:
            return -1
        seen: cython.longlong = version_read(self._version_at)
        if seen & 1 or self._words.signed[_DIRTY]:
            return -1
        return seen

    def read_holds(self, seen: cython.longlong) -> cython.bint:
        """True when no writer came since ``read_version`` gave ``seen``: what was read between
        is what a locked read would have read."""
        return version_holds(self._version_at, seen)

    def take_lock(self) -> Any:
        """Take the storage's lock (waiting as it says); the lock, for ``give_lock``."""
        if self._thread_lock is not None:
            thread_lock: ThreadLock = self._thread_lock
            thread_lock.take(-1.0)
            return thread_lock
        lock = self._storage.steady_lock
        if lock is None:
            lock = self._storage.lock()
        if isinstance(lock, RobustMutex):  # the shared segments' usual lock: taken in C
            mutex: RobustMutex = lock
            mutex._take(None)
        else:
            lock.__enter__()
        return lock

    def give_lock(self, lock: Any, error: Any) -> cython.int:
        """Give back the lock ``take_lock`` took (``error``: what the section failed with)."""
        if lock is self._thread_lock:
            thread_lock: ThreadLock = self._thread_lock
            thread_lock.give()
        elif isinstance(lock, RobustMutex):
            mutex: RobustMutex = lock
            mutex._give()
        elif error is None:
            lock.__exit__(None, None, None)
        else:
            lock.__exit__(type(error), error, None)
        return 0

    def short_of_room(self) -> cython.bint:
        """True when the journal's current extent may not hold what a safe point asks for
        (then ``Journal.ensure`` decides; otherwise it would do nothing)."""
        dirty: cython.Py_ssize_t = self._words.signed[_DIRTY]
        return self._words.limit - dirty < (_BUSY_ROOM if dirty else _IDLE_ROOM)

    def plain_commit(self) -> cython.bint:
        """True when committing is the transaction word's store alone: a journal, no extent
        taken, no write refused (otherwise ``Journal.finish`` gives extents back or raises)."""
        return self._journaled and not self._words.signed[self._extent_link] and \
            not self._words.doomed

    # -- the allocation hot path ------------------------------------------------------------
    @overload
    def allocate(self, size: int, *, nothrow: Literal[False] = False) -> int: ...
    @overload
    def allocate(self, size: int, *, nothrow: bool) -> int | None: ...

    def allocate(self, size: object, *, nothrow: object = False) -> int | None:
        """A handle to at least ``size`` bytes; ``BadAlloc`` (or None with ``nothrow``)."""
        wanted = check_size(size, "size")
        offset: cython.Py_ssize_t
        if self.bare():
            offset = self.allocate_offset(wanted)
        else:
            lock = self.enter_section(True, False)
            try:
                offset = self.allocate_offset(wanted)
            except BaseException as exc:
                self.leave_section(lock, True, exc)
                raise
            self.leave_section(lock, False)
        if offset >= 0:
            return int(offset)
        if nothrow:
            return None
        raise BadAlloc(f"cannot allocate {size} bytes")

    def deallocate(self, handle: object) -> None:
        """Free a block from ``allocate*``; ``InvalidPointer`` (nothing changed) otherwise."""
        offset = check_handle(handle)
        if self.bare():
            self.free_offset(offset)
            return
        lock = self.enter_section(True, False)
        try:
            self.free_offset(offset)
        except BaseException as exc:
            self.leave_section(lock, True, exc)
            raise
        self.leave_section(lock, False)

    def bare(self) -> cython.bint:
        """True when this allocation call may run without the lock (the module docstring says
        when); the checks a section makes on entry, made here as well."""
        if not self._bare or self._depth or self._words.logging or \
                self._words.observer is not None:
            return False
        self.check_usable(True)
        return not self._words.signed[_DIRTY]

    def check_usable(self, write: cython.bint) -> cython.int:
        """Refuse an operation on a closed segment, and a write on a read-only one."""
        if self._closed:
            raise ValueError(f"{type(self).__name__} is closed")
        if write and self._read_only:
            raise ReadOnlySegment("the segment was opened read-only")
        return 0

    def allocate_offset(self, wanted: Any) -> cython.Py_ssize_t:
        """The algorithm's answer to ``allocate(wanted)`` inside a section: an offset, or -1."""
        if wanted > self._size:
            return -1
        if self._kernel is not None:
            kernel: AlgorithmKernel = self._kernel
            return kernel.kernel_allocate(wanted)
        found = self._alg.allocate(wanted)
        return -1 if found is None else found

    def free_offset(self, offset: Any) -> cython.int:
        """The algorithm's ``deallocate(offset)`` inside a section."""
        if self._kernel is None:
            self._alg.deallocate(offset)
            return 0
        if not 0 <= offset <= self._size:
            raise InvalidPointer(f"offset {offset} is not a block of this segment")
        kernel: AlgorithmKernel = self._kernel
        kernel.kernel_deallocate(offset)
        return 0
