"""What may live in a segment as a named, unique or anonymous object, and how it is built there.

Two kinds of types: ctypes types (scalars, ``Structure``, ``Union``, arrays), placed with
``T.from_buffer`` so the object *is* the segment's bytes; and segment-aware types (the
containers) that implement the ``SegmentType`` protocol below and own further blocks.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from segalloc.segment import Segment

__all__ = ["SegmentType", "type_id", "type_name"]

_CTYPES_BASES: tuple[type, ...] = (
    ctypes._SimpleCData,
    ctypes.Structure,
    ctypes.Union,
    ctypes.Array,
)


@runtime_checkable
class SegmentType(Protocol):
    """A type that builds itself in a segment and may own more blocks there (containers).

    The object users hold is a light proxy; ``segment_handle`` is its offset in the segment.

    Optional (not part of the structural check, so older types still qualify):
    ``segment_verify(segment, offset, claim)``, a classmethod that checks the object's links
    and lengths, bounded, and calls ``claim(block, size)`` for every block it owns; the deep
    check (``segalloc.deep_check``) runs it for types registered with
    ``register_segment_type``.
    """

    @classmethod
    def segment_sizeof(cls) -> int:
        """Bytes of the fixed part placed in the object's block."""

    @classmethod
    def segment_type_id(cls) -> str:
        """A stable identity string, stored in the object header and checked on ``find``."""

    @classmethod
    def segment_construct(cls, segment: Segment, offset: int, *args: Any) -> Any:
        """Initialise the zeroed bytes at ``offset`` (may allocate more) and return a proxy."""

    @classmethod
    def segment_attach(cls, segment: Segment, offset: int) -> Any:
        """A proxy for the object already built at ``offset``."""

    @classmethod
    def segment_destroy(cls, segment: Segment, offset: int) -> None:
        """Free every block the object owns (not its own block)."""


#: the common base of every ctypes instance (not exported by the ctypes module)
_CDATA: type = ctypes.c_int.__mro__[-2]


def is_ctypes_object(obj: object) -> bool:
    """True for an instance of a ctypes type."""
    return isinstance(obj, _CDATA)


def is_ctypes_type(cls: object) -> bool:
    """True for the ctypes types a segment can hold directly."""
    return isinstance(cls, type) and issubclass(cls, _CTYPES_BASES)


def check_type(cls: object) -> None:
    """``TypeError`` unless ``cls`` can live in a segment."""
    if is_ctypes_type(cls):
        return
    if isinstance(cls, type) and isinstance(cls, SegmentType):
        return
    raise TypeError(
        f"{cls!r} cannot live in a segment: use a ctypes type (c_int, Structure, arrays) "
        "or a segment container type"
    )


def type_name(cls: type) -> str:
    """The qualified name that keys a unique instance (Boost uses ``typeid(T).name()``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def type_id(cls: type) -> str:
    """The identity stored with an object: qualified name and size for ctypes, else the type's own."""
    if is_ctypes_type(cls):
        return f"{type_name(cls)}/{ctypes.sizeof(cls)}"
    return str(cls.segment_type_id())  # type: ignore[attr-defined]


def sizeof(cls: type) -> int:
    """Bytes one element occupies in the object's block."""
    if is_ctypes_type(cls):
        return ctypes.sizeof(cls)
    return int(cls.segment_sizeof())  # type: ignore[attr-defined]


def alignment(cls: type) -> int:
    """The alignment one element needs."""
    if is_ctypes_type(cls):
        return ctypes.alignment(cls)
    return 16
