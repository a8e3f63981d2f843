"""A robust, process-shared pthread mutex in shared memory: the per-operation lock of a segment
whose bytes live in a named object (``segalloc.locking`` places it in the object's trailer).

Uncontended, taking it is one ``pthread_mutex_trylock`` (an atomic compare-and-swap, no system
call) and the outermost release one ``pthread_mutex_unlock``; refused, a locker first watches
the lock word for a few microseconds (a section is about that long), the GIL released: the
kernel (a futex) is entered only to wait longer, and a wait runs with the GIL released, in
slices that let signals through, until the deadline (then ``LockTimeout`` names the holding
process and thread from the mutex's owner field). The mutex belongs to a thread, so it
excludes this process's other threads as well; a depth counter makes it re-entrant within a
thread. Robust: when its holder dies (``SIGKILL`` included) the kernel marks it, the next locker
gets ``EOWNERDEAD``, makes it consistent and goes on; the segment's outermost section then
rolls back what the dead holder left (its journal), as it does after ``flock``'s release by the
kernel.

The mutex is followed by its *version word*, which lets readers read without it (a seqlock):
a writer holding the mutex makes the word odd before its first store (``version_open``) and
even, past every value it had, after its last (``version_close``); a reader notes an even
value (``version_read``), reads, and keeps what it read only when the word still holds that
value (``version_holds``). A writer that died inside leaves it odd, so readers lock (and the
next locker repairs, then closes it).

Compiled, the calls are inline C (``robust.pxd``, the version word's loads and stores C11
atomics); interpreted, the same libc functions run through ``ctypes`` on the same address, so
compiled and interpreted processes share one mutex and one version word.
"""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING, Any

import cython

from segalloc.errors import InvalidSegment, LockTimeout

__all__ = ["MUTEX_BYTES", "RobustMutex", "initialise"]

_EBUSY = cython.declare(cython.int, errno.EBUSY)
_ETIMEDOUT = cython.declare(cython.int, errno.ETIMEDOUT)
_EOWNERDEAD = cython.declare(cython.int, errno.EOWNERDEAD)
#: ``sizeof(pthread_mutex_t)`` (glibc, 64-bit Linux; robust.pxd asserts it): the version word
#: follows the mutex
MUTEX_BYTES = 40
#: rounds of 4 pauses a refused locker watches the lock word before it waits in the kernel
#: (about as long as a section of a lone operation runs: the wait's system calls and wake-up
#: would cost more)
_SPIN_ROUNDS = cython.declare(cython.int, 800)
#: seconds of one wait in the kernel before signals are looked at
_SLICE = cython.declare(cython.double, 0.05)

if not cython.compiled:  # compiled, the C forms come from robust.pxd
    import ctypes
    from threading import get_ident as thread_ident

    _libc = ctypes.CDLL(None)

    class _Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    def _c(name: str, *arguments: type) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
        function = getattr(_libc, name)
        function.argtypes, function.restype = list(arguments), ctypes.c_int
        return function

    _pointer = ctypes.c_void_p
    mutex_trylock = _c("pthread_mutex_trylock", _pointer)
    mutex_unlock = _c("pthread_mutex_unlock", _pointer)
    mutex_consistent = _c("pthread_mutex_consistent", _pointer)
    _lock = _c("pthread_mutex_lock", _pointer)
    _clocklock = _c("pthread_mutex_clocklock", _pointer, ctypes.c_int, ctypes.POINTER(_Timespec))
    _attr_init = _c("pthread_mutexattr_init", _pointer)
    _attr_pshared = _c("pthread_mutexattr_setpshared", _pointer, ctypes.c_int)
    _attr_robust = _c("pthread_mutexattr_setrobust", _pointer, ctypes.c_int)
    _attr_destroy = _c("pthread_mutexattr_destroy", _pointer)
    _mutex_init = _c("pthread_mutex_init", _pointer, _pointer)
    _PROCESS_SHARED = _ROBUST = 1  # PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST (glibc)

    def mutex_init(at: int) -> int:
        """``pthread_mutex_init`` with a robust, process-shared attribute."""
        attr = ctypes.create_string_buffer(64)  # room for any pthread_mutexattr_t
        rc = _attr_init(attr)
        if rc:
            return int(rc)
        rc = _attr_pshared(attr, _PROCESS_SHARED) or _attr_robust(attr, _ROBUST) or \
            _mutex_init(at, attr)
        _attr_destroy(attr)
        return int(rc)

    def version_read(at: int) -> int:
        """The version word at ``at``."""
        return ctypes.c_longlong.from_address(at).value

    def version_holds(at: int, seen: int) -> bool:
        """True when the version word at ``at`` still holds ``seen``."""
        return ctypes.c_longlong.from_address(at).value == seen

    def version_open(at: int) -> None:
        """A writer begins (holding the mutex): the word odd, unless a dead writer left it so."""
        word = ctypes.c_longlong.from_address(at)
        if not word.value & 1:
            word.value += 1

    def version_close(at: int) -> None:
        """A writer ends (still holding the mutex): the word even, past every value it had."""
        word = ctypes.c_longlong.from_address(at)
        word.value = (word.value | 1) + 1

    def mutex_wait(at: int, deadline: float) -> int:
        """Wait for the mutex until ``CLOCK_MONOTONIC`` reaches ``deadline`` (< 0: for ever);
        ctypes releases the GIL meanwhile."""
        if deadline < 0:
            return int(_lock(at))
        seconds = int(deadline)
        when = _Timespec(seconds, int((deadline - seconds) * 1e9))
        return int(_clocklock(at, time.CLOCK_MONOTONIC, ctypes.byref(when)))

    def mutex_spin(at: int, rounds: int) -> int:
        """One more trylock (the compiled form watches the lock word a while first)."""
        return int(mutex_trylock(at))

    def mutex_owner(at: int) -> int:
        """The owner thread id glibc keeps in the mutex (``__data.__owner``)."""
        return ctypes.c_int.from_address(at + 8).value

    def check_signals() -> int:
        """Nothing to do: the interpreter runs signal handlers between bytecodes."""
        return 0


def initialise(address: int) -> None:
    """Make the ``MUTEX_BYTES`` at ``address`` (shared memory) a fresh, unlocked robust mutex;
    only while no other process may use it. The version word after it keeps its value (an
    odd one, left by a writer gone unmarked, is closed by the next locker)."""
    rc = mutex_init(address)
    if rc:
        raise OSError(rc, f"pthread_mutex_init: {os.strerror(rc)}")


def _holder(tid: int) -> str:
    """Who ``tid`` is: its process (``/proc/TID/status``), and whether it is this one."""
    try:
        with open(f"/proc/{tid}/status") as status:
            pid = next(int(line.split()[1]) for line in status if line.startswith("Tgid:"))
    except (OSError, StopIteration, ValueError):
        return f"thread {tid} (no longer visible)"
    if pid == os.getpid():
        return f"pid {pid} (thread {tid}: another thread of this process)"
    return f"pid {pid} (thread {tid})"


@cython.cclass
class RobustMutex:
    """The robust mutex at an address: re-entrant per thread, excluding other threads and
    processes. Whoever made it keeps the memory mapped until ``close``."""

    if TYPE_CHECKING:  # the C fields (robust.pxd), as type checkers see them
        _address: int
        _depth: int
        _owner: int
        _abandoned: int

    def __init__(self, address: int) -> None:
        self._address = address
        self._depth = 0
        self._owner = 0
        self._abandoned = 0

    @property
    def depth(self) -> int:
        """Sections of the holding thread of this process now open (0: not held here)."""
        return self._depth

    @property
    def abandoned(self) -> int:
        """How often this process found the mutex left by a holder that died (``EOWNERDEAD``)."""
        return self._abandoned

    def enter(self, timeout: float | None = None) -> RobustMutex:
        """Take the mutex, waiting at most ``timeout`` seconds (None: for ever); then
        ``LockTimeout`` names the holder."""
        self._take(timeout)
        return self

    def __enter__(self) -> RobustMutex:
        self._take(None)
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self._give()

    def acquire(self, blocking: bool = True) -> bool:
        """Take the mutex; with ``blocking=False`` return False instead of waiting."""
        if blocking:
            self._take(None)
            return True
        me: cython.ulong = thread_ident()
        if self._depth and self._owner == me:
            self._depth += 1
            return True
        self._check_open()
        rc: cython.int = mutex_trylock(self._address)
        if rc == _EBUSY:
            return False
        self._taken(rc, me)
        return True

    def release(self) -> None:
        """Leave one section; the outermost one unlocks."""
        self._give()

    def forget(self) -> None:
        """In a forked child: the parent's sections are not the child's (the mutex stays the
        parent's thread's until it unlocks)."""
        self._depth = 0
        self._owner = 0

    def close(self) -> None:
        """Stop using the memory (the maker unmaps it next); later entries raise ValueError."""
        self._address = 0
        self._depth = 0

    def _take(self, timeout: Any) -> cython.int:
        me: cython.ulong = thread_ident()
        if self._depth and self._owner == me:
            self._depth += 1
            return 0
        self._check_open()
        rc: cython.int = mutex_trylock(self._address)
        if rc == _EBUSY:
            address: cython.Py_ssize_t = self._address
            with cython.nogil:
                rc = mutex_spin(address, _SPIN_ROUNDS)
        if rc == _EBUSY:
            rc = self._wait(timeout)
        self._taken(rc, me)
        return 0

    def _wait(self, timeout: Any) -> cython.int:
        """Wait in the kernel with the GIL released, in slices between which signals run."""
        address: cython.Py_ssize_t = self._address
        final: cython.double = -1.0 if timeout is None else time.monotonic() + timeout
        until: cython.double
        rc: cython.int
        while True:
            until = time.monotonic() + _SLICE
            if 0 <= final < until:
                until = final
            with cython.nogil:
                rc = mutex_wait(address, until)
            if rc != _ETIMEDOUT:
                return rc
            if 0 <= final <= until:
                raise LockTimeout(f"the segment's lock is held by "
                                  f"{_holder(mutex_owner(address))}; waited {timeout} s "
                                  "(a stopped or hung holder?)")
            check_signals()

    def _taken(self, rc: cython.int, me: cython.ulong) -> cython.int:
        """Finish taking the mutex after ``rc`` from trylock or a wait."""
        if rc == _EOWNERDEAD:  # its holder died in a section: ours now, the segment repairs
            self._abandoned += 1
            rc = mutex_consistent(self._address)
        if rc:
            if rc == errno.ENOTRECOVERABLE:
                raise InvalidSegment("the segment's lock is unusable (a holder died and the "
                                     "next one did not repair it); reopen it when no process "
                                     "has it open, which renews the lock")
            raise OSError(rc, f"the segment's lock: {os.strerror(rc)}")
        self._owner = me
        self._depth = 1
        return 0

    def _check_open(self) -> cython.int:
        if not self._address:
            raise ValueError("the segment's lock is closed")
        return 0

    def _give(self) -> cython.int:
        depth: cython.Py_ssize_t = self._depth - 1
        if depth < 0 or self._owner != thread_ident():
            raise RuntimeError("the segment's lock is released by a thread that does not hold it")
        self._depth = depth
        if depth == 0:
            self._owner = 0
            rc: cython.int = mutex_unlock(self._address)
            if rc:
                raise OSError(rc, f"the segment's lock: {os.strerror(rc)}")
        return 0
