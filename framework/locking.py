"""The cross-process lock of a segment whose bytes live in a named object (shm, a file).

A ``FileLock`` joins a ``threading.RLock`` (other threads of this process) with ``fcntl.flock``
on a descriptor of the backing object (other processes). ``flock``, not ``lockf``/``fcntl``
record locks: a record lock vanishes when *any* descriptor of the file is closed in the process,
while an flock belongs to one open file description and the kernel drops it only when that
description goes, which includes the death of the holder. A depth counter makes the lock
re-entrant: nested sections of one thread take the flock once and drop it at the outermost end.

Two open file descriptions of one file exclude each other even inside one process, so a thread
holding one segment object's lock would deadlock on a second object over the same backing
object. ``LockTable`` prevents that: every storage of this process that maps the same backing
object (by device and inode) shares one ``FileLock``. The table also tells the class-level
``resizing`` whether this process still maps an object.

After ``fork`` the child would share the parent's open file descriptions, so the two would not
exclude each other; the child therefore reopens every lock's description (``/proc/self/fd``).
The lock is pluggable: a storage builds it through its ``lock_factory``.

A wait can be bounded (``enter(timeout)``): the uncontended path is one non-blocking ``flock``
as before; only a refused one polls with short sleeps until the deadline and then raises
``LockTimeout`` naming the holder's pid as ``/proc/locks`` shows it for the inode.

Where asked (``watch_size``: the storage asks for objects that others than their owner may
write), each outermost entry also compares the object's size (``fstat``, one more system call)
with the largest mapping this process made of it: an object truncated behind our back (by a
hostile peer; a segalloc peer cannot, see below) raises ``InvalidSegment`` instead of the
``SIGBUS`` the operation would die of.

Who maps an object is told by a Linux open-file-description record lock on byte 0, apart
from the flock (the kernel keeps the two kinds apart): the ``LockTable`` takes a shared one on
each lock's description (``share_mapping``), so a process counts from its first open of an
object to its last close (not while objects kept after ``close()`` still view a mapping), and
the kernel drops it when the process dies. A resizer asks for the exclusive one (``others_map``).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType

from segalloc.errors import InvalidSegment, LockTimeout

__all__ = ["FileLock", "LockTable", "mapping_pids", "others_map", "process_locks", "share_mapping"]

_flock = fcntl.flock
_fstat = os.fstat
_EXCLUSIVE = fcntl.LOCK_EX
_EXCLUSIVE_NOW = fcntl.LOCK_EX | fcntl.LOCK_NB
_UNLOCK = fcntl.LOCK_UN
#: first and longest pause of a bounded wait, in seconds
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0005, 0.02
#: ``struct flock`` (l_type, l_whence, l_start, l_len, l_pid) on byte 0 of the object
_RANGE = struct.Struct("hhqqi4x")


def _range_lock(fd: int, kind: int, command: int = fcntl.F_OFD_SETLK) -> None:
    fcntl.fcntl(fd, command, _RANGE.pack(kind, os.SEEK_SET, 0, 1, 0))


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
    """A new open file description of the file ``fd`` refers to, with ``fd``'s access mode
    (a resizer's exclusive record lock needs write access)."""
    access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    return os.open(f"/proc/self/fd/{fd}", access | os.O_CLOEXEC)


class FileLock:
    """A re-entrant lock excluding other threads and other processes of one backing object.

    It owns ``fd`` (closed by ``close``). The kernel releases the flock if the process dies.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._thread_lock = threading.RLock()
        self._depth = 0
        #: the object must keep at least this many bytes (the largest mapping of it); 0: unwatched
        self._watched_size = 0

    @property
    def fd(self) -> int:
        """The descriptor the flock is taken on (-1 once closed)."""
        return self._fd

    def watch_size(self, size: int) -> None:
        """Check at each outermost entry that the object still has ``size`` bytes (0: stop)."""
        self._watched_size = max(self._watched_size, size) if size else 0

    # entering and leaving run around every operation: plain attribute work, no inner calls
    # unless the lock is contended or the object shrank
    def enter(self, timeout: float | None = None) -> FileLock:
        """Take the lock, waiting at most ``timeout`` seconds (None: for ever); then
        ``LockTimeout`` says who holds it."""
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

    __enter__ = enter  # ``with lock:`` waits for ever, at the cost of no extra call

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

    def _shrunk(self) -> str:
        size = _fstat(self._fd).st_size
        return (f"the backing object was truncated to {size} bytes while mapped with "
                f"{self._watched_size} (by another process, outside segalloc): it can no longer be "
                "used safely; close it")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        depth = self._depth - 1
        if depth == 0 and self._fd >= 0:
            _flock(self._fd, _UNLOCK)
        self._depth = depth  # before the thread lock goes: the next owner reads it
        self._thread_lock.release()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False instead of waiting."""
        if blocking:
            self.__enter__()
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

    def release(self) -> None:
        """Leave one section; the outermost one gives the flock back."""
        self.__exit__(None, None, None)

    def close(self) -> None:
        """Close the descriptor (dropping the flock if held); idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def reopen_after_fork(self) -> None:
        """In a forked child: take a description of our own, so parent and child exclude
        each other again; the parent's sections do not continue in the child."""
        if self._fd < 0:
            return
        own = _own_description(self._fd)
        os.close(self._fd)
        self._fd = own
        self._thread_lock = threading.RLock()
        self._depth = 0

    def __repr__(self) -> str:
        return f"<FileLock fd={self._fd} depth={self._depth}>"


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
