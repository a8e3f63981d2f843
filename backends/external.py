"""External storage: a segment in a buffer the caller owns (Boost's ``managed_external_buffer``).

Any writable, C-contiguous buffer works: ``bytearray``, ``mmap``, a ctypes array. ``CREATE_ONLY``
formats it; ``OPEN_ONLY`` attaches to the segment already in it, so a byte copy of a segment
opens as the same segment.

``OPEN_READ_ONLY`` over a writable buffer: objects found view the caller's live bytes through
read-only twins (``segalloc.readonly``); over an immutable one (``bytes``) they are copies, which
refuse writes the same way (the bytes cannot change, so a copy reads what they hold).
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

from segalloc.errors import InvalidSegment
from segalloc.interfaces import Mode, Storage, hookimpl
from segalloc.thread_lock import ThreadLock

__all__ = ["ExternalStorage"]

_MAGIC = b"SEGALLOC"


class ExternalStorage(Storage):
    """A view of the caller's buffer; the caller keeps it alive and owns its lifetime."""

    name = "external"
    managed_class_name = "ManagedExternalBuffer"
    in_process = True

    def __init__(self, mode: Mode, buffer: Any, size: int | None = None) -> None:
        if not isinstance(mode, Mode):
            raise TypeError(f"mode must be a Mode, not {type(mode).__name__}")
        try:
            view = memoryview(buffer)
        except TypeError:
            raise TypeError(f"buffer must support the buffer protocol, not {type(buffer).__name__}") from None
        if not view.c_contiguous:
            raise ValueError("buffer must be C-contiguous")
        view = view.cast("B")
        if size is None:
            size = len(view)
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if not len(view) and mode not in (Mode.CREATE_ONLY, Mode.OPEN_OR_CREATE):
            raise InvalidSegment("the buffer is empty: it holds no segalloc segment")
        if not 0 < size <= len(view):
            raise ValueError(f"size must be in [1, {len(view)}] (the buffer's length), got {size}")
        view = view[:size]
        if mode is Mode.OPEN_OR_CREATE:
            mode = Mode.OPEN_ONLY if bytes(view[: len(_MAGIC)]) == _MAGIC else Mode.CREATE_ONLY
        #: writable view for objects found read-only (None over an immutable buffer)
        self._objects: memoryview | None = None
        if mode is Mode.OPEN_COPY_ON_WRITE:
            view = memoryview(bytearray(view))
        elif mode is Mode.OPEN_READ_ONLY:
            self._objects = None if view.readonly else view
            view = view.toreadonly()
        elif view.readonly:
            raise ValueError(f"buffer is read-only; open it with {Mode.OPEN_READ_ONLY}")
        if mode is Mode.CREATE_ONLY and len(view) < len(_MAGIC):
            raise ValueError(f"size {size} is too small for a segment")
        if mode is not Mode.CREATE_ONLY and bytes(view[: len(_MAGIC)]) != _MAGIC:
            raise InvalidSegment("the buffer does not hold a segalloc segment (bad magic)")
        self._view = view
        self._mode = mode
        self._lock = ThreadLock()

    @classmethod
    def open(cls, mode: Mode, buffer: Any, size: int | None = None) -> ExternalStorage:
        """``(mode, buffer, size=None)``: the first ``size`` bytes of ``buffer`` (all of it by
        default)."""
        return cls(mode, buffer, size)

    @property
    def buffer(self) -> memoryview:
        return self._view

    @property
    def object_buffer(self) -> memoryview | None:
        """In read-only mode the caller's buffer itself when it is writable (objects found then
        read the live bytes; the guards refuse writes, a deliberate bypass reaches the
        caller's buffer), None over an immutable one (bytes: objects found are copies)."""
        return self._objects if self._mode is Mode.OPEN_READ_ONLY else self._view

    @property
    def base_alignment(self) -> int:
        writable = self.object_buffer
        if writable is None:
            return 8
        address = ctypes.addressof(ctypes.c_char.from_buffer(writable))
        return min(address & -address, 4096) if address else 4096

    @property
    def created(self) -> bool:
        return self._mode is Mode.CREATE_ONLY

    @property
    def read_only(self) -> bool:
        return self._mode is Mode.OPEN_READ_ONLY

    def lock(self) -> Any:
        return self._lock

    def flush(self) -> None:
        """Nothing to write through: the caller owns the bytes."""

    def close(self) -> None:
        """Drop this segment's views of the caller's buffer; one still exported from them (a
        numpy array, a typed view) keeps its own until it goes."""
        for view in (self._view, self._objects):
            if view is not None:
                with contextlib.suppress(BufferError):
                    view.release()

    def __repr__(self) -> str:
        return f"<ExternalStorage size={len(self._view)} mode={self._mode.name}>"


@hookimpl
def segalloc_register_backends(register: Any) -> None:
    """Register the external-buffer backend."""
    register(ExternalStorage)
