"""Shared-memory storage: a segment in POSIX shared memory found by name (Boost's
``managed_shared_memory``).

On Linux a POSIX shared-memory object named ``name`` is the file ``/dev/shm/name`` (what
``shm_open`` opens), so this backend is ``MappedStorage`` over that path: the same modes,
race-free creation, reserved space, lock and class-level ``remove`` / ``resize``. It does not
use ``multiprocessing.shared_memory``, whose resource tracker (before Python 3.13) unlinks
objects that other processes still use when the process that opened them exits.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from segalloc.backends.mapping import MappedStorage
from segalloc.interfaces import hookimpl

__all__ = ["SHM_DIR", "SharedMemoryStorage"]

#: where the kernel shows POSIX shared-memory objects as files
SHM_DIR = "/dev/shm"
#: NAME_MAX: the longest file name, in bytes
_MAX_NAME_BYTES = 255


class SharedMemoryStorage(MappedStorage):
    """A POSIX shared-memory object, named by a plain name (no ``/``)."""

    name = "shared_memory"
    managed_class_name = "ManagedSharedMemory"

    @classmethod
    def _path_of(cls, name: Any) -> tuple[str, str]:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ValueError(
                f"name must be a non-empty name without '/' or NUL and not '.' or '..', got {name!r}"
            )
        if len(name.encode()) > _MAX_NAME_BYTES:
            raise ValueError(f"name must be at most {_MAX_NAME_BYTES} UTF-8 bytes, got {name!r}")
        if not os.path.isdir(SHM_DIR):
            raise OSError(errno.ENOSYS, "POSIX shared memory by name needs /dev/shm (Linux)", SHM_DIR)
        return name, os.path.join(SHM_DIR, name)


@hookimpl
def segalloc_register_backends(register: Any) -> None:
    """Register the shared-memory backend."""
    register(SharedMemoryStorage)
