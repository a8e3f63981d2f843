"""The element types a container takes: the storage a Python type stands for, and the
codec of each (``str`` stands for ``SegmentString``, so this module sits above it).
"""

from __future__ import annotations

import ctypes
import struct

from segalloc import objects
from segalloc.containers.codecs import (
    _POINTER_CODES,
    _STRUCT_CODES,
    _BytesCodec,
    _Codec,
    _CtypesCodec,
    _StrCodec,
    _StructCodec,
)
from segalloc.containers.string import SegmentString


def _spelled(element: object) -> object:
    """The element type a Python type stands for (``int`` -> ``c_int64``, ``str`` ->
    ``SegmentString``, ...); any other type as it is."""
    python_types: dict[object, object] = {
        int: ctypes.c_int64, float: ctypes.c_double, bool: ctypes.c_bool, str: SegmentString,
    }
    return python_types.get(element, element)


def _codec_for(element: object, *, variable: bool) -> _Codec:
    """The codec of an element type (already ``_spelled``); ``variable`` admits
    ``SegmentString`` and ``bytes``."""
    if element is SegmentString or element is bytes:
        if not variable:
            shown = "str (SegmentString)" if element is SegmentString else "bytes"
            raise TypeError(f"{shown} values vary in length, and a SegmentVector is "
                            "one contiguous buffer of fixed-size elements: use a SegmentList "
                            "or a SegmentDict for them")
        return _StrCodec() if element is SegmentString else _BytesCodec()
    if not objects.is_ctypes_type(element):
        allowed = "a ctypes type, int, float, bool" + (", str or bytes" if variable else "")
        raise TypeError(f"container element type must be {allowed}, not {element!r}")
    assert isinstance(element, type)
    code = getattr(element, "_type_", None)
    if isinstance(code, str) and code in _POINTER_CODES:
        raise TypeError(
            f"{element.__name__} is a pointer: an address means nothing in another process; "
            "store offsets (handles) as c_uint64 instead"
        )
    if (
        isinstance(code, str)
        and code in _STRUCT_CODES
        and struct.calcsize("@" + code) == ctypes.sizeof(element)
    ):
        return _StructCodec(element)
    if ctypes.sizeof(element) == 0:
        raise TypeError(f"{element!r} has size 0 and cannot be stored")
    return _CtypesCodec(element)
