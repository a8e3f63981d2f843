"""segalloc: managed memory segments with pluggable allocators.

Import the whole public API from here::

    from segalloc import ManagedHeapMemory, Mode, BadAlloc, UNIQUE

The managed classes of the built-in backends (``ManagedHeapMemory``, ``ManagedExternalBuffer``,
``ManagedSharedMemory``, ``ManagedMappedFile``) are real classes; those of third-party backends
are made from the registered storage plugins and reached by lookup: ``managed_class(storage)``,
``managed_classes()``, or an attribute of this module named by the backend's
``managed_class_name``.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

# first: with SEGALLOC_PURE_PYTHON=1 it makes every later segalloc import load the .py source
from segalloc.build import PURE_PYTHON, is_compiled  # isort: skip
from segalloc.containers import SegmentDict, SegmentList, SegmentString, SegmentVector
from segalloc.errors import (
    BadAlloc,
    InvalidPointer,
    InvalidSegment,
    LockTimeout,
    NameExists,
    ReadOnlySegment,
    SegallocError,
    SegmentCorrupt,
)
from segalloc.interfaces import Command, MemoryAlgorithm, Mode, Storage, hookimpl
from segalloc.managed import (
    ManagedExternalBuffer,
    ManagedHeapMemory,
    ManagedMappedFile,
    ManagedSharedMemory,
    managed_class,
    managed_classes,
)
from segalloc.manager import ANONYMOUS, UNIQUE, NamedObject, NamedSegment, Segment
from segalloc.names import InstanceType
from segalloc.plugins import PluginHost, plugins
from segalloc.segment import DEFAULT_ALGORITHM, RawSegment

try:
    __version__ = metadata.version("segalloc")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ALGORITHM",
    "UNIQUE",
    "BadAlloc",
    "Command",
    "InstanceType",
    "InvalidPointer",
    "InvalidSegment",
    "LockTimeout",
    "ManagedExternalBuffer",
    "ManagedHeapMemory",
    "ManagedMappedFile",
    "ManagedSharedMemory",
    "MemoryAlgorithm",
    "Mode",
    "NameExists",
    "PURE_PYTHON",
    "NamedObject",
    "NamedSegment",
    "PluginHost",
    "RawSegment",
    "ReadOnlySegment",
    "SegallocError",
    "Segment",
    "SegmentCorrupt",
    "SegmentDict",
    "SegmentList",
    "SegmentString",
    "SegmentVector",
    "Storage",
    "hookimpl",
    "is_compiled",
    "managed_class",
    "managed_classes",
    "plugins",
]


def __getattr__(name: str) -> Any:
    """The managed class of a third-party backend, by its ``managed_class_name``."""
    classes = managed_classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
