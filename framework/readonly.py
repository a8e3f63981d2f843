"""Read-only twins of ctypes types: what a segment opened ``OPEN_READ_ONLY`` hands out.

An object found in a read-only segment is laid over the live bytes (see ``Segment._ctypes_at``
and the storage's ``object_buffer``), so it reads what writers change later. Its type is a
subclass of the user's type that refuses every ordinary write with ``ReadOnlySegment``:
attribute assignment (``obj.x = 1``, ``obj.value = 1``), item assignment (``arr[0] = 1``),
and the same on nested structures, unions and arrays reached through it (each is handed out
as its own read-only twin over the same bytes). ``isinstance(obj, UserType)`` stays true and
the twin keeps the user type's name and module, so its type identity is the user type's.

A deliberate bypass (``memoryview(obj)``, ``ctypes.memmove``, calling ``Structure.__setattr__``)
is not caught here: the bytes beneath are a private copy-on-write mapping (mapped storages) or
the caller's own writable buffer, so such a write never faults and never reaches the file.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

from segalloc.errors import ReadOnlySegment
from segalloc.objects import is_ctypes_object

__all__ = ["read_only_twin", "writable_type"]


def _refuse(obj: object) -> ReadOnlySegment:
    return ReadOnlySegment(f"this {type(obj).__qualname__} was found in a segment opened "
                           "read-only: it cannot be changed")


def _shared_part(value: Any, owner: object) -> Any:
    """``value`` as a read-only twin when it is a part of ``owner`` (a nested structure or
    array viewing the same bytes; each of a slice's elements); plain values as they are."""
    if isinstance(value, list):
        return [_shared_part(item, owner) for item in value]
    if is_ctypes_object(value) and value._b_base_ is owner:
        kind: Any = type(value)
        twin: Any = read_only_twin(kind)
        return twin.from_buffer(value)
    return value


def _setattr(self: Any, name: str, value: object) -> None:
    raise _refuse(self)


def _delattr(self: Any, name: str) -> None:
    raise _refuse(self)


def _setitem(self: Any, index: object, value: object) -> None:
    raise _refuse(self)


@functools.cache
def read_only_twin(cls: type) -> type:
    """The read-only subclass of the ctypes type ``cls`` (cached, so one per type)."""
    parent: Any = cls
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__setattr__": _setattr,
        "__delattr__": _delattr,
        "_segalloc_read_only_of_": cls,
    }
    if issubclass(cls, (ctypes.Structure, ctypes.Union)):

        def __getattribute__(self: Any, name: str) -> Any:
            return _shared_part(parent.__getattribute__(self, name), self)

        namespace["__getattribute__"] = __getattribute__
    elif issubclass(cls, ctypes.Array):

        def __getitem__(self: Any, index: Any) -> Any:
            return _shared_part(parent.__getitem__(self, index), self)

        namespace["__getitem__"] = __getitem__
        namespace["__setitem__"] = _setitem
    return type(cls)(cls.__name__, (cls,), namespace)


def writable_type(cls: type) -> type:
    """The user's type behind a read-only twin (``cls`` itself otherwise)."""
    return getattr(cls, "_segalloc_read_only_of_", cls)
