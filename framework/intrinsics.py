"""Bit, byte and thread-lock operations the hot paths use, in their interpreted form.

Compiled modules ``cimport`` these names from ``intrinsics.pxd`` instead, where they are inline
C over the compiler's builtins (``__builtin_clzll`` / ``__builtin_ctzll``): one definition per
build, the same answers (the differential test holds them to it)."""

from __future__ import annotations

import _thread
from typing import Any

__all__ = ["bit_length", "copy_bytes", "fill_all_ones", "free_lock", "give_lock", "lowest_bit",
           "new_lock", "next_change", "same_bytes", "take_lock_now", "thread_ident", "wait_for_lock"]

#: ``x.bit_length()`` for ``x >= 0``: the position of the highest set bit plus one (0 for 0)
bit_length = int.bit_length


def lowest_bit(x: int) -> int:
    """The position of the lowest set bit of ``x > 0``."""
    return (x & -x).bit_length() - 1


def same_bytes(view: memoryview, at: int, data: bytes) -> bool:
    """Whether the bytes of ``view`` at ``at`` are ``data`` (``IndexError`` past its end)."""
    if at < 0 or at + len(data) > len(view):
        raise IndexError(f"bytes [{at}, {at + len(data)}) are outside the segment")
    return view[at : at + len(data)] == data


def next_change(view: memoryview, at: int, data: bytes, start: int) -> int:
    """The first position ``k >= start`` where ``data[k]`` differs from the byte of ``view`` at
    ``at + k``, or ``len(data)`` when none does (``IndexError`` past the end of ``view``)."""
    if at < 0 or at + len(data) > len(view):
        raise IndexError(f"bytes [{at}, {at + len(data)}) are outside the segment")
    if start >= len(data) or view[at + start : at + len(data)] == data[start:]:
        return len(data)
    while view[at + start] == data[start]:
        start += 1
    return start


def copy_bytes(out: memoryview, at: int, data: bytes) -> None:
    """``out[at : at + len(data)] = data`` (``IndexError`` past its end)."""
    if at < 0 or at + len(data) > len(out):
        raise IndexError(f"bytes [{at}, {at + len(data)}) are outside the segment")
    out[at : at + len(data)] = data


def fill_all_ones(out: Any) -> None:
    """Every 64-bit word of ``out`` (a signed 64-bit array or view) set to -1, all bits one
    (compiled: one ``memset``)."""
    octets = memoryview(out).cast("B")
    octets[:] = b"\xff" * len(octets)


# -- a plain thread lock (``segalloc.thread_lock`` builds the re-entrant one on it) -------------
#: the calling thread's id
thread_ident = _thread.get_ident


def new_lock() -> _thread.LockType:
    """A free thread lock."""
    return _thread.allocate_lock()


def free_lock(lock: _thread.LockType) -> None:
    """Give a lock no one uses back (interpreted, the garbage collector does)."""


def take_lock_now(lock: _thread.LockType) -> bool:
    """Take ``lock`` if it is free, without waiting."""
    return lock.acquire(False)


def wait_for_lock(lock: _thread.LockType, seconds: float) -> bool:
    """Wait at most ``seconds`` (< 0: for ever) for ``lock``, the GIL released and signals
    handled meanwhile; False when the time ran out."""
    return lock.acquire(True, -1 if seconds < 0 else seconds)


def give_lock(lock: _thread.LockType) -> None:
    """Free ``lock``."""
    lock.release()
