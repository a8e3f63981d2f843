"""Codecs: how one Python value of a container's element type is stored as bytes.

Each container class holds the codecs of its element types; ``encode`` validates a value
before anything is allocated, ``decode`` reads one back from the segment's bytes.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from segalloc import objects

#: ctypes codes that ``struct`` packs with the same size and meaning (native order)
_STRUCT_CODES = frozenset("bBhHiIlLqQfd?c")
#: ctypes codes of pointers: an address means nothing in another process or a byte copy
_POINTER_CODES = frozenset("zZPO")


class _Codec:
    """Turns values into the bytes a container stores and back.

    ``size`` is the fixed byte size, or None when values vary in length (``str``, ``bytes``).
    ``encode`` validates: it raises ``TypeError``/``OverflowError`` for a value it cannot store.
    """

    size: int | None
    type_id: str
    label: str
    #: the value is one signed 64-bit integer (``c_int64``): a container that stores it at a
    #: word-aligned offset may read and write it as that word
    word: bool = False

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, buf: memoryview, offset: int, length: int) -> Any:
        raise NotImplementedError


class _StructCodec(_Codec):
    """Scalars ``struct`` can pack: the fast path for ``c_int``, ``c_double``, ..."""

    def __init__(self, ctype: type) -> None:
        self._struct = struct.Struct("@" + str(ctype._type_))  # type: ignore[attr-defined]
        self.size = self._struct.size
        self.word = self._struct.format[-1] in "lq" and self.size == 8
        self.type_id = objects.type_id(ctype)
        self.label = objects.type_name(ctype)
        self._ctype: Any = ctype

    def encode(self, value: Any) -> bytes:
        if isinstance(value, self._ctype):
            raw: bytes = bytes(value)
            return raw
        try:
            return self._struct.pack(value)
        except struct.error as exc:
            kind = OverflowError if self._is_number(value) else TypeError
            raise kind(f"cannot store {value!r} as {self.label}: {exc}") from None

    def _is_number(self, value: Any) -> bool:
        """Whether ``value`` is of the kind this type stores, so a refusal means out of range
        (an int too big for a double included)."""
        code = self._struct.format[-1]
        if code in "fd":
            return isinstance(value, (int, float))
        return code != "c" and hasattr(value, "__index__")

    def decode(self, buf: memoryview, offset: int, length: int) -> Any:
        return self._struct.unpack_from(buf, offset)[0]


class _CtypesCodec(_Codec):
    """Any other ctypes type (``Structure``, arrays, ``c_wchar``): stored as its bytes.

    Simple types read back as their ``.value``; structures and arrays as a copy of the type.
    """

    def __init__(self, ctype: type) -> None:
        self._ctype: Any = ctype
        self.size = ctypes.sizeof(ctype)
        self.type_id = objects.type_id(ctype)
        self.label = objects.type_name(ctype)
        self._simple = issubclass(ctype, ctypes._SimpleCData)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, self._ctype):
            return bytes(value)
        try:
            if not self._simple and isinstance(value, (tuple, list)):
                return bytes(self._ctype(*value))
            return bytes(self._ctype(value))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot store {value!r} as {self.label}: {exc}") from None

    def decode(self, buf: memoryview, offset: int, length: int) -> Any:
        obj = self._ctype.from_buffer_copy(buf, offset)
        return obj.value if self._simple else obj


class _StrCodec(_Codec):
    """``str`` stored as UTF-8 (``SegmentString`` keys and values of a dict)."""

    size = None
    type_id = "SegmentString"
    label = "SegmentString"

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"cannot store a {type(value).__name__} as a SegmentString")
        return value.encode("utf-8", "surrogatepass")

    def decode(self, buf: memoryview, offset: int, length: int) -> Any:
        return bytes(buf[offset : offset + length]).decode("utf-8", "surrogatepass")


class _BytesCodec(_Codec):
    """``bytes`` stored as they are."""

    size = None
    type_id = "bytes"
    label = "bytes"

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"cannot store a {type(value).__name__} as bytes")
        return bytes(value)

    def decode(self, buf: memoryview, offset: int, length: int) -> Any:
        return bytes(buf[offset : offset + length])
