"""The cross-process lock of a segment whose bytes live in a named object (shm, a file).

Two locks make it. The per-operation lock (``enter`` / ``release``, ``with lock:``) is a robust,
process-shared pthread mutex (``segalloc.robust``: tens of nanoseconds uncontended, the kernel
only to wait or when a holder died) in a trailer of the object, ``TRAILER`` bytes after the
segment's, followed by its version word (``version_word``: readers of other processes read
without the lock against it, ``segalloc.core``): the segment bytes (which may be copied byte for
byte) carry no lock state, and the segment's layout does not change. The trailer ends with
``MAGIC``; an object without it (made before the trailer existed) locks every operation with
``flock`` as below. The rare paths (the creation protocol, opening, ``resizing``) take the file
lock (``hold`` / ``unhold``): a ``threading.RLock`` joined with ``fcntl.flock`` on a descriptor
of the object, re-entrant by a depth counter. ``flock``, not ``lockf``/``fcntl`` record locks: a
record lock vanishes when *any* descriptor of the file is closed in the process, while an flock
belongs to one open file description and the kernel drops it only when that description goes,
the holder's death included.

The mutex is attached (``attach``, under the file lock, at open) from a small shared mapping of
the trailer that the lock owns. A mutex may say "locked by a thread that is gone" without the
kernel ever marking it so (a file after a reboot, an object copied while locked): attaching
renews it when no other process uses it, which a second Linux open-file-description record lock
tells (a shared one on byte 1 while attached, asked for exclusively by the next attacher; the
kernel drops it when its process dies). The lock's description is opened read-write when this
user may write the object, so read-only opens take the mutex too; a reader that may not write
the object locks with ``flock``, which does not exclude the mutex's holders (its reads may meet
an operation half done).

Two open file descriptions of one file exclude each other even inside one process, so a thread
holding one segment object's file lock would deadlock on a second object over the same backing
object. ``LockTable`` prevents that: every storage of this process that maps the same backing
object (by device and inode) shares one ``FileLock`` (so one mutex mapping and one depth).
The table also tells the class-level ``resizing`` whether this process still maps an object.

After ``fork`` the child would share the parent's open file descriptions, so the two would not
exclude each other; the child therefore reopens every lock's description (``/proc/self/fd``)
and forgets the parent's sections (the mutex stays its parent thread's until that unlocks).
The lock is pluggable: a storage builds it through its ``lock_factory``.

A wait can be bounded (``enter(timeout)``): the uncontended path is one trylock (or one
non-blocking ``flock``); a refused mutex waits in the kernel until the deadline, a refused
flock polls with short sleeps; then ``LockTimeout`` names the holder's pid (from the mutex's
owner, or as ``/proc/locks`` shows it for the inode).

Where asked (``watch_size``: the storage asks for objects that others than their owner may
write), each outermost entry also compares the object's size (``fstat``, one more system call)
with the largest mapping this process made of it, before touching the trailer: an object
truncated behind our back (by a hostile peer; a segalloc peer cannot, see below) raises
``InvalidSegment`` instead of the ``SIGBUS`` the operation would die of.

Who maps an object is told by a Linux open-file-description record lock on byte 0, apart
from the flock (the kernel keeps the two kinds apart): the ``LockTable`` takes a shared one on
each lock's description (``share_mapping``), so a process counts from its first open of an
object to its last close (not while objects kept after ``close()`` still view a mapping), and
the kernel drops it when the process dies. A resizer asks for the exclusive one (``others_map``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

from segalloc.errors import InvalidSegment, LockTimeout
from segalloc.robust import MUTEX_BYTES, RobustMutex, initialise

__all__ = ["MAGIC", "TRAILER", "FileLock", "LockTable", "mapping_pids", "others_map",
           "process_locks", "share_mapping"]

#: bytes after the segment's that hold its mutex: up to 7 to align it, the mutex (40), its
#: version word (8), MAGIC last
TRAILER = 64
#: the trailer's last bytes: this object has a mutex in its trailer
MAGIC = b"SEGLOCK1"

_flock = fcntl.flock
_fstat = os.fstat
_EXCLUSIVE = fcntl.LOCK_EX
_EXCLUSIVE_NOW = fcntl.LOCK_EX | fcntl.LOCK_NB
_UNLOCK = fcntl.LOCK_UN
#: first and longest pause of a bounded wait, in seconds
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0005, 0.02
#: ``struct flock`` (l_type, l_whence, l_start, l_len, l_pid) on one byte of the object
_RANGE = struct.Struct("hhqqi4x")
#: the record-locked bytes: 0 while mapping the object, 1 while using its mutex
_MAPS, _USES_MUTEX = 0, 1


def _range_lock(fd: int, kind: int, command: int = fcntl.F_OFD_SETLK, byte: int = _MAPS) -> None:
    fcntl.fcntl(fd, command, _RANGE.pack(kind, os.SEEK_SET, byte, 1, 0))


def share_mapping(fd: int) -> None:
    """Count the open file description of ``fd`` as mapping the object while it is open (waits
    out a resizer's instant check)."""
    _range_lock(fd, fcntl.F_RDLCK, fcntl.F_OFD_SETLKW)


def others_map(fd: int) -> bool:
    """True when a description other than ``fd``'s (any process, this one included) maps the
    object; ``fd``'s own description keeps no lock afterwards."""
    try:
        _range_lock(fd, fcntl.F_WRLCK)
    except BlockingIOError:
        return True
    _range_lock(fd, fcntl.F_UNLCK)
    return False


def _device_and_inode(stat: os.stat_result) -> tuple[str, str]:
    """How ``/proc/locks`` and ``/proc/PID/maps`` spell the object's identity."""
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}"
    return f"{device}:{stat.st_ino}", f"{device} {stat.st_ino} "


def mapping_pids(stat: os.stat_result) -> list[int]:
    """The processes (visible to us) that map the object ``stat`` describes, from
    ``/proc/PID/maps`` (record locks of open file descriptions carry no pid)."""
    _, mapped = _device_and_inode(stat)
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/maps") as maps:
                    if any(mapped in line for line in maps):
                        pids.append(int(entry))
            except OSError:  # gone, or not ours to read
                continue
    return sorted(pids)


def flock_holders(stat: os.stat_result) -> list[int]:
    """The pids ``/proc/locks`` shows holding an flock on the object ``stat`` describes."""
    locked, _ = _device_and_inode(stat)
    holders = []
    try:
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == locked:
                    holders.append(int(fields[4]))
    except OSError:
        pass
    return holders


def _own_description(fd: int) -> int:
    """A new open file description of the file ``fd`` refers to: read-write when this user may
    write it (the mutex's mapping and a resizer's exclusive record lock need it), else with
    ``fd``'s access mode."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        return os.open(f"/proc/self/fd/{fd}", access | os.O_CLOEXEC)


def _mutex_offset(object_size: int) -> int:
    """Where the mutex lies in an object of ``object_size`` bytes: the trailer's first 8-aligned
    byte."""
    return (object_size - TRAILER + 7) & ~7


class FileLock:
    """A re-entrant lock excluding other threads and other processes of one backing object:
    the trailer's mutex once attached (else the file lock) for operations, the file lock for
    creation, opening and resizing.

    It owns ``fd`` (closed by ``close``). The kernel releases the flock if the process dies,
    and marks the mutex for its next locker.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._thread_lock = threading.RLock()
        self._depth = 0
        #: the object must keep at least this many bytes (the largest mapping of it); 0: unwatched
        self._watched_size = 0
        #: the trailer's mutex, once attached, and the mapping (and its export) it lies in
        self._mutex: RobustMutex | None = None
        self._trailer: tuple[mmap.mmap, ctypes.c_char] | None = None

    @property
    def fd(self) -> int:
        """The descriptor the flock is taken on (-1 once closed)."""
        return self._fd

    @property
    def mutex(self) -> RobustMutex | None:
        """The trailer's mutex, when attached."""
        return self._mutex

    @property
    def version_word(self) -> int:
        """The address of the mutex's version word while sections take the bare mutex (see
        ``section_lock``), else 0: a reader that must check the object's size first locks."""
        if self._trailer is None or self._watched_size:
            return 0
        return ctypes.addressof(self._trailer[1]) + MUTEX_BYTES

    def watch_size(self, size: int) -> None:
        """Check at each outermost entry that the object still has ``size`` bytes (0: stop)."""
        self._watched_size = max(self._watched_size, size) if size else 0

    def section_lock(self) -> RobustMutex | FileLock:
        """What a section enters for ever, cheapest first: the bare mutex unless the size is
        watched (then this lock, which checks it before touching the trailer)."""
        if self._mutex is not None and not self._watched_size:
            return self._mutex
        return self

    # -- the mutex in the trailer ----------------------------------------------------------
    def attach(self, object_size: int, fresh: bool = False) -> int:
        """Called holding the file lock, over an object of ``object_size`` bytes: use the
        mutex of its trailer (``fresh``: write the trailer first, for a new object; an old one
        is renewed when no other process uses it); the segment's size, the bytes before the
        trailer (all of them for an object without one)."""
        if self._mutex is not None and not fresh:
            return object_size - TRAILER
        self.detach()
        if object_size <= TRAILER:
            return object_size
        if fresh:
            os.pwrite(self._fd, MAGIC, object_size - len(MAGIC))
        elif os.pread(self._fd, len(MAGIC), object_size - len(MAGIC)) != MAGIC:
            return object_size  # made without a trailer: flock for every operation
        if fcntl.fcntl(self._fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDWR:
            return object_size - TRAILER  # may not write the mutex: flock (the module says)
        at = _mutex_offset(object_size)
        start = at - at % mmap.ALLOCATIONGRANULARITY
        mapping = mmap.mmap(self._fd, object_size - start, access=mmap.ACCESS_WRITE, offset=start)
        word = ctypes.c_char.from_buffer(mapping, at - start)
        mutex = RobustMutex(ctypes.addressof(word))
        if fresh or not self._others_use_mutex():
            initialise(ctypes.addressof(word))  # renews what a holder gone unmarked left
        _range_lock(self._fd, fcntl.F_RDLCK, byte=_USES_MUTEX)
        self._mutex, self._trailer = mutex, (mapping, word)
        return object_size - TRAILER

    def resize(self, segment_size: int) -> None:
        """Called holding the file lock while no process maps the object: give the segment
        ``segment_size`` bytes (growth reserves them), the trailer moving to the new end. The
        new trailer's magic is written first (growth extends the object by it), so a kill at any
        step leaves an object that ends with a trailer."""
        old = _fstat(self._fd).st_size
        trailer = old - self.attach(old)
        self.detach()
        end = segment_size + trailer
        if trailer:
            os.pwrite(self._fd, MAGIC, end - len(MAGIC))
        if end > old:
            os.posix_fallocate(self._fd, 0, end)
        else:
            os.ftruncate(self._fd, end)
        if trailer:
            self.attach(end, fresh=True)

    def _others_use_mutex(self) -> bool:
        """True when another process has the trailer's mutex attached (so it is live)."""
        try:
            _range_lock(self._fd, fcntl.F_WRLCK, byte=_USES_MUTEX)
        except BlockingIOError:
            return True
        return False

    def detach(self) -> None:
        """Stop using the trailer's mutex (it moves when the object is resized)."""
        mutex, trailer = self._mutex, self._trailer
        if mutex is None or trailer is None:
            return
        if mutex.depth:
            raise RuntimeError("the segment's lock is detached while held")
        mapping = trailer[0]
        self._mutex = self._trailer = None
        del trailer  # the last reference to the mapping's export
        mutex.close()
        mapping.close()
        if self._fd >= 0:
            _range_lock(self._fd, fcntl.F_UNLCK, byte=_USES_MUTEX)

    # -- operations: the mutex when attached, else the file lock ---------------------------
    def enter(self, timeout: float | None = None) -> FileLock:
        """Take the lock, waiting at most ``timeout`` seconds (None: for ever); then
        ``LockTimeout`` says who holds it."""
        mutex = self._mutex
        if mutex is None:
            return self.hold(timeout)
        if self._watched_size:
            self._check_size()
        mutex.enter(timeout)
        return self

    __enter__ = enter  # ``with lock:`` waits for ever, at the cost of no extra call

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._mutex is None:
            self.unhold()
        else:
            self._mutex.release()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False instead of waiting."""
        mutex = self._mutex
        if mutex is None:
            return self._try_hold(blocking)
        if self._watched_size:
            self._check_size()
        return mutex.acquire(blocking)

    def release(self) -> None:
        """Leave one section; the outermost one gives the lock back."""
        self.__exit__(None, None, None)

    # -- the file lock (creation, opening, resizing; operations without a mutex) -----------
    # entering and leaving run around every operation of an object without a trailer: plain
    # attribute work, no inner calls unless the lock is contended or the object shrank
    def hold(self, timeout: float | None = None) -> FileLock:
        """Take the file lock, waiting at most ``timeout`` seconds (None: for ever)."""
        if not self._thread_lock.acquire(False):
            self._wait_for_thread(timeout)
        if self._depth == 0 and self._fd >= 0:
            try:
                try:
                    _flock(self._fd, _EXCLUSIVE_NOW)
                except BlockingIOError:
                    self._wait_for_process(timeout)
                if self._watched_size and _fstat(self._fd).st_size < self._watched_size:
                    _flock(self._fd, _UNLOCK)
                    raise InvalidSegment(self._shrunk())
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1
        return self

    def unhold(self) -> None:
        """Leave one file-lock section; the outermost one gives the flock back."""
        depth = self._depth - 1
        if depth == 0 and self._fd >= 0:
            _flock(self._fd, _UNLOCK)
        self._depth = depth  # before the thread lock goes: the next owner reads it
        self._thread_lock.release()

    @contextlib.contextmanager
    def holding(self, timeout: float | None = None) -> Iterator[FileLock]:
        """``with lock.holding(timeout):`` the file lock."""
        self.hold(timeout)
        try:
            yield self
        finally:
            self.unhold()

    def _try_hold(self, blocking: bool) -> bool:
        if blocking:
            self.hold()
            return True
        if not self._thread_lock.acquire(False):
            return False
        if self._depth == 0 and self._fd >= 0:
            try:
                _flock(self._fd, _EXCLUSIVE_NOW)
            except BlockingIOError:
                self._thread_lock.release()
                return False
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1
        return True

    def _wait_for_thread(self, timeout: float | None) -> None:
        if not self._thread_lock.acquire(True, -1 if timeout is None else timeout):
            raise LockTimeout(f"the segment's lock is held by another thread of this process "
                              f"(pid {os.getpid()}); waited {timeout} s")

    def _wait_for_process(self, timeout: float | None) -> None:
        if timeout is None:
            _flock(self._fd, _EXCLUSIVE)
            return
        deadline = time.monotonic() + timeout
        pause = _FIRST_PAUSE
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holders = flock_holders(_fstat(self._fd))
                who = f"pid {', '.join(map(str, holders))}" if holders else "an unknown process"
                raise LockTimeout(f"the segment's lock is held by {who} (from /proc/locks); "
                                  f"waited {timeout} s (a stopped or hung holder?)")
            time.sleep(min(pause, remaining))
            pause = min(2 * pause, _LONGEST_PAUSE)
            try:
                _flock(self._fd, _EXCLUSIVE_NOW)
                return
            except BlockingIOError:
                continue

    def _check_size(self) -> None:
        if _fstat(self._fd).st_size < self._watched_size:
            raise InvalidSegment(self._shrunk())

    def _shrunk(self) -> str:
        size = _fstat(self._fd).st_size
        return (f"the backing object was truncated to {size} bytes while mapped with "
                f"{self._watched_size} (by another process, outside segalloc): it can no longer be "
                "used safely; close it")

    def close(self) -> None:
        """Detach the mutex and close the descriptor (dropping the flock if held); idempotent."""
        self.detach()
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def reopen_after_fork(self) -> None:
        """In a forked child: take a description of our own, so parent and child exclude
        each other again; the parent's sections do not continue in the child."""
        if self._mutex is not None:
            self._mutex.forget()
        if self._fd < 0:
            return
        own = _own_description(self._fd)
        os.close(self._fd)
        self._fd = own
        self._thread_lock = threading.RLock()
        self._depth = 0
        if self._mutex is not None:  # the child uses the mutex too
            _range_lock(own, fcntl.F_RDLCK, byte=_USES_MUTEX)

    def __repr__(self) -> str:
        kind = "mutex" if self._mutex is not None else "flock"
        return f"<FileLock fd={self._fd} depth={self._depth} {kind}>"


class LockTable:
    """One ``FileLock`` per backing object mapped by this process, counted by its users."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[int, int], tuple[FileLock, int]] = {}

    @staticmethod
    def key(stat: os.stat_result) -> tuple[int, int]:
        """The identity of a backing object: (device, inode)."""
        return stat.st_dev, stat.st_ino

    def share(self, fd: int, factory: Callable[[int], FileLock]) -> FileLock:
        """The lock of the object ``fd`` refers to, made (on a description of its own, which no
        mapping keeps open) if this process had none; each call must be matched by ``unshare``."""
        key = self.key(os.fstat(fd))
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = factory(_own_description(fd))
                share_mapping(lock.fd)
            self._locks[key] = (lock, users + 1)
            return lock

    def unshare(self, lock: FileLock) -> None:
        """Drop one use of ``lock``; the last one closes it."""
        with self._guard:
            for key, (known, users) in self._locks.items():
                if known is lock:
                    if users > 1:
                        self._locks[key] = (lock, users - 1)
                    else:
                        del self._locks[key]
                        lock.close()
                    return
        raise ValueError(f"{lock!r} is not shared through this table")

    def holds(self, stat: os.stat_result) -> bool:
        """True when this process maps the object ``stat`` describes."""
        with self._guard:
            return self.key(stat) in self._locks

    def reopen_after_fork(self) -> None:
        """Give every lock its own open file description in a forked child."""
        self._guard = threading.Lock()
        for lock, _ in self._locks.values():
            lock.reopen_after_fork()
            if lock.fd >= 0:
                share_mapping(lock.fd)  # the child maps the objects too


#: the table every mapped storage of this process uses
process_locks = LockTable()
os.register_at_fork(after_in_child=process_locks.reopen_after_fork)
