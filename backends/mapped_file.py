"""Mapped-file storage: a segment in a file on disk (Boost's ``managed_mapped_file``).

The machinery (modes, race-free creation, reserved space, locking, resizing) is
``segalloc.backends.mapping.MappedStorage``; this module names the object by a file path.
"""

from __future__ import annotations

import os
from typing import Any

from segalloc.backends.mapping import MappedStorage
from segalloc.interfaces import hookimpl

__all__ = ["MappedFileStorage"]


class MappedFileStorage(MappedStorage):
    """A file on disk, named by its path."""

    name = "mapped_file"
    managed_class_name = "ManagedMappedFile"

    @classmethod
    def _path_of(cls, name: Any) -> tuple[str, str]:
        if not isinstance(name, (str, os.PathLike)):
            raise TypeError(f"name must be a path (str or os.PathLike), not {type(name).__name__}")
        path = os.fspath(name)
        if not isinstance(path, str):
            raise TypeError(f"name must be a str path, not {type(path).__name__}")
        if not path or "\0" in path:
            raise ValueError(f"name must be a non-empty path without NUL, got {path!r}")
        return path, path


@hookimpl
def segalloc_register_backends(register: Any) -> None:
    """Register the mapped-file backend."""
    register(MappedFileStorage)
