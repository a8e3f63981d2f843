"""Codecs: how one Python value of a container's element type is stored as bytes.

Each container class holds the codecs of its element types; ``encode`` validates a value
before anything is allocated, ``decode`` reads one back from the segment's bytes. Compiled
(``codecs.pxd``), the codecs are C classes, so a compiled container calls them in C.
"""

from __future__ import annotations

import ctypes
import struct
from typing import TYPE_CHECKING, Any

import cython

from segalloc import objects

#: ctypes codes that ``struct`` packs with the same size and meaning (native order)
_STRUCT_CODES = frozenset("bBhHiIlLqQfd?c")
#: ctypes codes of pointers: an address means nothing in another process or a byte copy
_POINTER_CODES = frozenset("zZPO")


@cython.cclass
class _Codec:
    """Turns values into the bytes a container stores and back.

    ``size`` is the fixed byte size, or None when values vary in length (``str``, ``bytes``).
    ``encode`` validates: it raises ``TypeError``/``OverflowError`` for a value it cannot store.
    ``word``: the value is one signed 64-bit integer (``c_int64``), so a container that stores
    it at a word-aligned offset may read and write it as that word.
    """

    if TYPE_CHECKING:  # the C fields (codecs.pxd), as type checkers see them
        size: int | None
        type_id: str
        label: str
        word: bool

    def __init__(self, size: int | None, type_id: str, label: str, word: bool = False) -> None:
        self.size = size
        self.type_id = type_id
        self.label = label
        self.word = word

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, buf: Any, offset: cython.Py_ssize_t, length: cython.Py_ssize_t) -> Any:
        raise NotImplementedError


@cython.cclass
class _StructCodec(_Codec):
    """Scalars ``struct`` can pack: the fast path for ``c_int``, ``c_double``, ..."""

    if TYPE_CHECKING:
        _struct: struct.Struct
        _ctype: Any

    def __init__(self, ctype: Any) -> None:
        packer = struct.Struct("@" + str(ctype._type_))
        _Codec.__init__(self, packer.size, objects.type_id(ctype), objects.type_name(ctype),
                        packer.format[-1] in "lq" and packer.size == 8)
        self._struct = packer
        self._ctype = ctype

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

    def decode(self, buf: Any, offset: cython.Py_ssize_t, length: cython.Py_ssize_t) -> Any:
        return self._struct.unpack_from(buf, offset)[0]


@cython.cclass
class _CtypesCodec(_Codec):
    """Any other ctypes type (``Structure``, arrays, ``c_wchar``): stored as its bytes.

    Simple types read back as their ``.value``; structures and arrays as a copy of the type.
    """

    if TYPE_CHECKING:
        _ctype: Any
        _simple: bool

    def __init__(self, ctype: Any) -> None:
        _Codec.__init__(self, ctypes.sizeof(ctype), objects.type_id(ctype), objects.type_name(ctype))
        self._ctype = ctype
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

    def decode(self, buf: Any, offset: cython.Py_ssize_t, length: cython.Py_ssize_t) -> Any:
        obj = self._ctype.from_buffer_copy(buf, offset)
        return obj.value if self._simple else obj


@cython.cclass
class _StrCodec(_Codec):
    """``str`` stored as UTF-8 (``SegmentString`` keys and values of a dict)."""

    def __init__(self) -> None:
        _Codec.__init__(self, None, "SegmentString", "SegmentString")

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"cannot store a {type(value).__name__} as a SegmentString")
        text: str = value  # (typed: compiled, the encode is one C call, not a method lookup)
        try:
            return text.encode("utf-8")  # (strict: no error handler to look up by name)
        except UnicodeEncodeError:  # a lone surrogate: stored as it is, the same bytes otherwise
            return text.encode("utf-8", "surrogatepass")

    def decode(self, buf: Any, offset: cython.Py_ssize_t, length: cython.Py_ssize_t) -> Any:
        return bytes(buf[offset : offset + length]).decode("utf-8", "surrogatepass")


@cython.cclass
class _BytesCodec(_Codec):
    """``bytes`` stored as they are."""

    def __init__(self) -> None:
        _Codec.__init__(self, None, "bytes", "bytes")

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"cannot store a {type(value).__name__} as bytes")
        return bytes(value)

    def decode(self, buf: Any, offset: cython.Py_ssize_t, length: cython.Py_ssize_t) -> Any:
        return bytes(buf[offset : offset + length])
