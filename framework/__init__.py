"""segalloc: managed memory segments with pluggable allocators.

Import the whole public API from here::

    from segalloc import ManagedHeapMemory, Mode, BadAlloc, UNIQUE

The managed classes (``ManagedHeapMemory``, ``ManagedExternalBuffer``,
``ManagedSharedMemory``, ``ManagedMappedFile`` and those of third-party backends) come from
the registered storage plugins and are looked up on first use.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

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
from segalloc.managed import managed_class, managed_classes
from segalloc.names import InstanceType
from segalloc.plugins import PluginHost, plugins
from segalloc.segment import (
    ANONYMOUS,
    DEFAULT_ALGORITHM,
    UNIQUE,
    NamedObject,
    NamedSegment,
    Segment,
)

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
    "MemoryAlgorithm",
    "Mode",
    "NameExists",
    "NamedObject",
    "NamedSegment",
    "PluginHost",
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
    "managed_class",
    "managed_classes",
    "plugins",
]


def __getattr__(name: str) -> Any:
    """Resolve ``ManagedHeapMemory`` and the other managed classes from registered backends."""
    classes = managed_classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module 'framework' has no attribute {name!r}")
