"""The re-entrant thread lock of storage only this process reaches (heap, a caller's buffer).

Every segment operation takes its storage's lock. ``threading.RLock`` costs a Python method
call with argument parsing to enter and another to leave: on a heap segment that was half of a
compiled ``SegmentDict`` lookup. ``ThreadLock`` is the same re-entrant lock whose ``take`` /
``give`` the segment core calls in C when compiled (``thread_lock.pxd``): the owner's thread id
and a depth make it re-entrant, a free lock is taken without a wait, and only a held one waits,
with the GIL released. Both builds run this code over the lock of ``segalloc.intrinsics`` (a
PyThread lock in C, a ``_thread.lock`` interpreted).

After ``fork`` the child's threads are not the parent's: ``reset`` gives the child a free lock,
as the segment forgets the sections the parent had open (``segalloc.segment``).
"""

from __future__ import annotations

from types import TracebackType

import cython

if not cython.compiled:  # compiled, the C forms come from intrinsics.pxd
    from segalloc.intrinsics import (
        free_lock,
        give_lock,
        new_lock,
        take_lock_now,
        thread_ident,
        wait_for_lock,
    )

__all__ = ["ThreadLock"]


@cython.cclass
class ThreadLock:
    """A re-entrant lock excluding the other threads of this process (``threading.RLock``'s
    interface: ``with``, ``acquire(blocking, timeout)``, ``release()``)."""

    def __init__(self) -> None:
        self._lock = new_lock()
        self._owner = 0
        self._depth = 0

    def __dealloc__(self) -> None:  # (compiled only: the C lock goes with its object)
        free_lock(self._lock)

    def take(self, timeout: cython.double) -> cython.bint:
        """Enter, waiting at most ``timeout`` seconds (< 0: for ever); False if it ran out."""
        me: cython.ulong = thread_ident()
        if self._depth and self._owner == me:
            self._depth += 1
            return True
        if not take_lock_now(self._lock) and not wait_for_lock(self._lock, timeout):
            return False
        self._owner = me
        self._depth = 1
        return True

    def give(self) -> cython.int:
        """Leave one level; the outermost frees the lock (``RuntimeError`` if not held)."""
        if not self._depth or self._owner != thread_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._depth -= 1
        if not self._depth:
            self._owner = 0
            give_lock(self._lock)
        return 0

    def reset(self) -> None:
        """In a forked child: a free lock (the threads that held it are the parent's)."""
        old = self._lock
        self._lock = new_lock()
        self._owner = 0
        self._depth = 0
        free_lock(old)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock; ``blocking=False`` returns False instead of waiting."""
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        took: bool = self.take(timeout if blocking else 0.0)
        return took

    def release(self) -> None:
        """Leave one level of the lock."""
        self.give()

    def __enter__(self) -> bool:
        took: bool = self.take(-1.0)
        return took

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.give()

    def __repr__(self) -> str:
        return f"<ThreadLock owner={self._owner} depth={self._depth}>"
