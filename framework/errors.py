"""The exceptions segalloc raises.

Every caller mistake and every damaged segment maps to one of these, so users can tell
"you asked for something impossible" from "the bytes are not a sane segment".
"""

from __future__ import annotations

__all__ = [
    "BadAlloc",
    "InvalidPointer",
    "InvalidSegment",
    "LockTimeout",
    "NameExists",
    "ReadOnlySegment",
    "SegallocError",
    "SegmentCorrupt",
]


class SegallocError(Exception):
    """Base class of every segalloc-specific error."""


class BadAlloc(SegallocError, MemoryError):
    """The segment has no block that satisfies the request (Boost's ``bad_alloc``)."""


class InvalidPointer(SegallocError, ValueError):
    """An offset or object that is not a live block or object of this segment."""


class InvalidSegment(SegallocError):
    """The bytes cannot be opened as a segment: bad magic, version, size, unknown algorithm."""


class SegmentCorrupt(InvalidSegment):
    """An in-segment structure is inconsistent (a walk left the region, a cycle, a bad tag)."""


class LockTimeout(SegallocError, TimeoutError):
    """A segment's lock was not free within the timeout asked (its holder is named)."""


class ReadOnlySegment(SegallocError, PermissionError):
    """A write was attempted on a segment opened with ``Mode.OPEN_READ_ONLY``."""


class NameExists(SegallocError, ValueError):
    """``construct`` was asked for a name (or unique type) that the segment already holds."""
