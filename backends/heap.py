"""Heap storage: a segment in this process's memory (Boost's ``managed_heap_memory``).

The bytes live in an anonymous mapping, so the segment start is page aligned; its pages are
committed at creation (as Boost's ``std::vector`` of bytes does), so first touches do not fault
inside timed work. ``grow`` moves
them to a larger mapping (the segment refuses while ctypes objects, arrays or buffer views
taken from it are alive, so none points at the old copy); handles stay valid.
"""

from __future__ import annotations

import contextlib
import mmap
from typing import Any

from segalloc.interfaces import Storage, hookimpl
from segalloc.thread_lock import ThreadLock

__all__ = ["HeapStorage"]


def _check_size(size: object) -> int:
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    return size


def _anonymous(size: int) -> mmap.mmap:
    """Private anonymous memory with its pages populated up front where the OS can."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)


class HeapStorage(Storage):
    """Anonymous private memory of one process."""

    name = "heap"
    managed_class_name = "ManagedHeapMemory"
    in_process = True

    def __init__(self, size: int) -> None:
        self._map = _anonymous(_check_size(size))
        self._view = memoryview(self._map)
        self._lock = ThreadLock()

    @classmethod
    def open(cls, size: int) -> HeapStorage:
        """``(size)``: a new, empty segment of ``size`` bytes."""
        return cls(size)

    @property
    def buffer(self) -> memoryview:
        return self._view

    @property
    def base_alignment(self) -> int:
        return mmap.PAGESIZE

    @property
    def created(self) -> bool:
        return True

    @property
    def read_only(self) -> bool:
        return False

    def lock(self) -> Any:
        return self._lock

    def flush(self) -> None:
        """Nothing to write through: the bytes exist only in memory."""

    def _move_to(self, new_size: int) -> None:
        bigger = _anonymous(new_size)
        keep = min(new_size, len(self._view))
        bigger[:keep] = self._view[:keep]
        old = self._map
        self._map, self._view = bigger, memoryview(bigger)
        try:
            old.close()
        except BufferError:
            pass  # objects taken before the move still view it; it goes when they do

    def grow_in_place(self, extra: int) -> None:
        """Move the bytes to a mapping ``extra`` bytes larger."""
        self._move_to(len(self._view) + _check_size(extra) if extra else len(self._view))

    def truncate(self, new_size: int) -> None:
        """Move the bytes to a mapping of ``new_size`` bytes."""
        self._move_to(_check_size(new_size))

    def close(self) -> None:
        """Let the bytes go; a buffer still exported from them (a numpy array, a typed view)
        keeps them until it goes, as in every backend."""
        with contextlib.suppress(BufferError):
            self._view.release()
        with contextlib.suppress(BufferError):
            self._map.close()

    def __repr__(self) -> str:
        return "<HeapStorage closed>" if self._map.closed else f"<HeapStorage size={len(self._map)}>"


@hookimpl
def segalloc_register_backends(register: Any) -> None:
    """Register the heap backend."""
    register(HeapStorage)
