"""The user-facing managed classes: Boost's four as real classes, and one made for any other backend.

``ManagedHeapMemory``, ``ManagedExternalBuffer``, ``ManagedSharedMemory`` and
``ManagedMappedFile`` are written out, so ``dir()``, completion, ``inspect.signature`` and type
checkers see their constructors. Each names its storage plugin (``backend = "heap"``) instead of
importing it: the storage class is looked up in the plugin host when used, so the core still
depends on the backends only through ``segalloc.interfaces``. A third-party backend gets its
managed class by registering: ``managed_class`` builds it from the ``Storage`` class.
"""

from __future__ import annotations

import os
from typing import Any

from segalloc.interfaces import Mode, Storage
from segalloc.manager import NamedSegment, Segment
from segalloc.plugins import plugins

__all__ = [
    "ManagedExternalBuffer",
    "ManagedHeapMemory",
    "ManagedMappedFile",
    "ManagedSharedMemory",
    "managed_class",
    "managed_classes",
]


class ManagedHeapMemory(Segment):
    """Boost's ``managed_heap_memory``: a new, empty segment of ``size`` bytes in this
    process's memory.

    ``algorithm`` names the allocation algorithm (default best_fit). ``grow(extra)`` and
    ``shrink_to_fit()`` resize it while open; the memory may move, so fetch objects again from
    their handles afterwards (handles stay valid).
    """

    backend = "heap"

    def __init__(self, size: int, *, algorithm: str | None = None) -> None:
        super().__init__(size, algorithm=algorithm)


class ManagedExternalBuffer(Segment):
    """Boost's ``managed_external_buffer``: a segment in a buffer the caller owns and keeps alive.

    The segment is the first ``size`` bytes of ``buffer`` (all of it by default), any
    C-contiguous buffer (``bytearray``, ``mmap``, a ctypes array): ``CREATE_ONLY`` formats them,
    ``OPEN_ONLY`` attaches to the segment already there, so a byte copy of a segment opens as
    the same segment. ``algorithm`` picks a new segment's allocation algorithm (default
    best_fit) or, when opening, checks the segment's.
    """

    backend = "external"

    def __init__(
        self, mode: Mode, buffer: Any, size: int | None = None, *, algorithm: str | None = None
    ) -> None:
        super().__init__(mode, buffer, size, algorithm=algorithm)


class ManagedSharedMemory(NamedSegment):
    """Boost's ``managed_shared_memory``: a segment in a POSIX shared-memory object found by name.

    ``size`` bytes (required to create, refused otherwise) under ``name`` (no ``/``); a new
    object gets exactly ``permissions``, whatever the umask. ``algorithm`` picks a new segment's
    allocation algorithm (default best_fit) or, when opening, checks the segment's. An object of
    another user, or one that group or others may write beyond ``permissions``, is refused with
    ``PermissionError`` unless ``trust_foreign``; the lock waits at most ``timeout`` seconds
    (None: for ever; ``LockTimeout`` names the holder), and ``lock_timeout`` changes it later.

    Every process that opens ``name`` sees the same segment; operations are locked across
    processes and journaled, so a process killed inside one leaves it rolled back. The object
    outlives the processes until ``ManagedSharedMemory.remove(name)``; it is resized only while
    no process maps it, through the class-level ``grow(name, extra)`` / ``shrink_to_fit(name)``.
    """

    backend = "shared_memory"

    def __init__(
        self, mode: Mode, name: str, size: int | None = None, *,
        algorithm: str | None = None, permissions: int = 0o600, trust_foreign: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(mode, name, size, algorithm=algorithm, permissions=permissions,
                         trust_foreign=trust_foreign, timeout=timeout)


class ManagedMappedFile(NamedSegment):
    """Boost's ``managed_mapped_file``: a segment in a file on disk, mapped into memory.

    ``size`` bytes (required to create, refused otherwise) in the file ``path``; a new file gets
    exactly ``permissions``, whatever the umask. ``algorithm`` picks a new segment's allocation
    algorithm (default best_fit) or, when opening, checks the segment's. The same sharing,
    locking, journal, ownership check (``trust_foreign``), lock ``timeout`` and class-level
    ``grow`` / ``shrink_to_fit`` / ``remove`` as ``ManagedSharedMemory``; the segment outlives
    every process.
    """

    backend = "mapped_file"

    def __init__(
        self, mode: Mode, path: str | os.PathLike[str], size: int | None = None, *,
        algorithm: str | None = None, permissions: int = 0o600, trust_foreign: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(mode, path, size, algorithm=algorithm, permissions=permissions,
                         trust_foreign=trust_foreign, timeout=timeout)


#: the built-in managed classes by the backend plugin they name
_BUILT_IN: dict[str, type[Segment]] = {
    cls.backend: cls
    for cls in (ManagedHeapMemory, ManagedExternalBuffer, ManagedSharedMemory, ManagedMappedFile)
}


def managed_class(storage_class: type[Storage]) -> type[Segment]:
    """The managed segment class over ``storage_class``: the built-in class for a built-in
    backend, else one made (once per storage class) from what the backend declares."""
    built_in = _BUILT_IN.get(storage_class.name)
    if built_in is not None and built_in.storage_class is storage_class:
        return built_in
    made = storage_class.__dict__.get("_managed_class")
    if made is None:
        base = NamedSegment if storage_class.named else Segment
        made = type(
            storage_class.managed_class_name,
            (base,),
            {
                "backend": storage_class.name,
                "storage_class": storage_class,
                "__module__": "segalloc",
                "__doc__": f"A managed segment in {storage_class.name} storage.\n\n"
                f"Arguments: {storage_class.open.__doc__ or ''}\n"
                "Keyword ``algorithm`` picks the allocation algorithm (default best_fit).",
            },
        )
        type.__setattr__(storage_class, "_managed_class", made)
    assert isinstance(made, type) and issubclass(made, Segment)
    return made


def managed_classes() -> dict[str, type[Segment]]:
    """Managed classes of every registered backend, by class name."""
    return {
        cls.managed_class_name: managed_class(cls) for cls in plugins().backends.values()
    }
