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
``resize`` whether this process still maps an object.

After ``fork`` the child would share the parent's open file descriptions, so the two would not
exclude each other; the child therefore reopens every lock's description (``/proc/self/fd``).
The lock is pluggable: a storage builds it through its ``lock_factory``.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["FileLock", "LockTable", "process_locks"]

_flock = fcntl.flock
_EXCLUSIVE = fcntl.LOCK_EX
_UNLOCK = fcntl.LOCK_UN


class FileLock:
    """A re-entrant lock excluding other threads and other processes of one backing object.

    It owns ``fd`` (closed by ``close``). The kernel releases the flock if the process dies.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._thread_lock = threading.RLock()
        self._depth = 0

    @property
    def fd(self) -> int:
        """The descriptor the flock is taken on (-1 once closed)."""
        return self._fd

    # entering and leaving run around every operation: plain attribute work, no inner calls
    def __enter__(self) -> FileLock:
        self._thread_lock.acquire()
        if self._depth == 0 and self._fd >= 0:
            try:
                _flock(self._fd, _EXCLUSIVE)
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1
        return self

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
                _flock(self._fd, _EXCLUSIVE | fcntl.LOCK_NB)
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
            if self._depth:
                # a mapping may outlive us on a duplicate of this description, keeping the flock
                _flock(fd, _UNLOCK)
            os.close(fd)

    def reopen_after_fork(self) -> None:
        """In a forked child: take a description of our own, so parent and child exclude
        each other again; the parent's sections do not continue in the child."""
        if self._fd < 0:
            return
        own = os.open(f"/proc/self/fd/{self._fd}", os.O_RDONLY | os.O_CLOEXEC)
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
        """The lock of the object ``fd`` refers to, made (on a duplicate of ``fd``) if this
        process had none; each call must be matched by ``unshare``."""
        key = self.key(os.fstat(fd))
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = factory(os.dup(fd))
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


#: the table every mapped storage of this process uses
process_locks = LockTable()
os.register_at_fork(after_in_child=process_locks.reopen_after_fork)
