"""segalloc: managed memory segments with pluggable allocators.

Import the whole public API from here::

    from framework import ManagedHeapMemory, Mode, BadAlloc, UNIQUE

The managed classes (``ManagedHeapMemory``, ``ManagedExternalBuffer``,
``ManagedSharedMemory``, ``ManagedMappedFile`` and those of third-party backends) come from
the registered storage plugins and are looked up on first use.
"""

from __future__ import annotations

from typing import Any

from framework.containers import SegmentDict, SegmentList, SegmentString, SegmentVector
from framework.errors import (
    BadAlloc,
    InvalidPointer,
    InvalidSegment,
    NameExists,
    ReadOnlySegment,
    SegallocError,
    SegmentCorrupt,
)
from framework.interfaces import Command, MemoryAlgorithm, Mode, Storage, hookimpl
from framework.managed import managed_class, managed_classes
from framework.names import InstanceType
from framework.plugins import PluginHost, plugins
from framework.segment import (
    ANONYMOUS,
    DEFAULT_ALGORITHM,
    UNIQUE,
    NamedObject,
    NamedSegment,
    Segment,
)

__all__ = [
    "ANONYMOUS",
    "DEFAULT_ALGORITHM",
    "UNIQUE",
    "BadAlloc",
    "Command",
    "InstanceType",
    "InvalidPointer",
    "InvalidSegment",
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
