"""``SegmentVector``: a contiguous array of fixed-size elements in the segment that grows in
place when it can (Boost's vector<T>), with the buffer protocol for scalar elements.

Compiled (Cython's pure-Python mode, ``vector.pxd``): ``_VectorCore`` holds the layout as C
methods over the typed word view; ``SegmentVector`` adds the generic class.
"""

from __future__ import annotations

import builtins
from typing import Any, Generic, TypeVar

import cython

from segalloc.containers.buffers import BUFFER_HEADER_SIZE, _verify_buffer
from segalloc.containers.codecs import _StructCodec
from segalloc.containers.proxy import _UNCHECKED_BYTES, WORD, _caller_error
from segalloc.containers.sequence import _Sequence
from segalloc.deep_check import Claim, register_segment_type
from segalloc.errors import BadAlloc
from segalloc.words import Words

if not cython.compiled:  # compiled, the C forms come from buffers.pxd
    from segalloc.containers.buffers import (
        B_CAPACITY,
        B_DATA,
        B_LENGTH,
        _release_buffer,
        _reserve,
    )

T = TypeVar("T")
# the imported constants as C values
_WORD = cython.declare(cython.Py_ssize_t, WORD)
_UNCHECKED = cython.declare(cython.Py_ssize_t, _UNCHECKED_BYTES)


@cython.cclass
class _VectorCore(_Sequence):
    """The vector's layout under the list protocol (``SegmentVector`` is the public class):
    the buffer's header is checked against the segment and the allocated bytes before any
    element is read or written through it."""

    def clear_header(self, w: Words) -> cython.int:
        hw: cython.Py_ssize_t = self.segment_handle >> 3
        w.put(hw + B_DATA, 0)
        w.put(hw + B_LENGTH, 0)
        w.put(hw + B_CAPACITY, 0)
        return 0

    def length(self, w: Words) -> cython.Py_ssize_t:
        """The stored length, checked against the allocated bytes (``span`` checks it against
        the capacity and the buffer on every access to the elements)."""
        count: cython.Py_ssize_t = w.signed[(self.segment_handle >> 3) + B_LENGTH]
        if 0 <= count <= _UNCHECKED // self.element_size:
            return count
        return self._checked_count(w[(self.segment_handle >> 3) + B_LENGTH], self.element_size)

    def span(self, w: Words) -> tuple[cython.Py_ssize_t, cython.Py_ssize_t]:
        """``(data, length)`` checked against each other, the segment bounds and the
        allocated bytes."""
        hw: cython.Py_ssize_t = self.segment_handle >> 3
        data: cython.Py_ssize_t = w.signed[hw + B_DATA]
        length: cython.Py_ssize_t = self.length(w)
        capacity: cython.Py_ssize_t = w.signed[hw + B_CAPACITY]
        size: cython.Py_ssize_t = self.element_size
        if length > capacity or data < 0 or data & (_WORD - 1) or (data == 0) != (capacity == 0) \
                or capacity > (len(w.octets) - data) // size:
            raise self._corrupt(f"buffer {w[hw + B_DATA]} of {w[hw + B_CAPACITY]} elements "
                                f"({length} used) is outside the segment")
        if capacity > _UNCHECKED // size:
            self._checked_count(capacity, size, "capacity")
        return data, length

    def element_span(self, w: Words, position: cython.Py_ssize_t) -> tuple[cython.Py_ssize_t,
                                                                             cython.Py_ssize_t]:
        data: cython.Py_ssize_t
        data, _ = self.span(w)
        return data + position * self.element_size, self.element_size

    def collect(self, w: Words, decode: cython.bint) -> list[Any]:
        data: cython.Py_ssize_t
        length: cython.Py_ssize_t
        data, length = self.span(w)
        size: cython.Py_ssize_t = self.element_size
        buf = self._buf
        return [self.value(w, buf, data + i * size, size, decode) for i in range(length)]

    def write_from(self, w: Words, start: cython.Py_ssize_t, raw: bytes,
                   length: cython.Py_ssize_t) -> cython.int:
        """Write elements ``raw`` at byte ``start`` and make the length ``length``."""
        self.journal_room(w, len(raw) // _WORD + 3)
        w.store_bytes(start, raw)
        w.put((self.segment_handle >> 3) + B_LENGTH, length)
        return 0

    def insert_raws(self, w: Words, index: cython.Py_ssize_t, raws: list) -> cython.int:  # type: ignore[type-arg]
        length: cython.Py_ssize_t
        _, length = self.span(w)
        size: cython.Py_ssize_t = self.element_size
        data: cython.Py_ssize_t = _reserve(self, w, size, length + len(raws))
        start: cython.Py_ssize_t = data + index * size
        end: cython.Py_ssize_t = data + length * size
        self.write_from(w, start, b"".join(raws) + bytes(self._buf[start:end]),
                        length + len(raws))
        return 0

    def delete_positions(self, w: Words, positions: list) -> cython.int:  # type: ignore[type-arg]
        if not positions:
            return 0
        data: cython.Py_ssize_t
        length: cython.Py_ssize_t
        data, length = self.span(w)
        size: cython.Py_ssize_t = self.element_size
        buf = self._buf
        doomed = set(positions)
        first: cython.Py_ssize_t = positions[0]
        kept = b"".join([buf[data + i * size : data + (i + 1) * size]
                         for i in range(first, length) if i not in doomed])
        self.write_from(w, data + first * size, kept, length - len(doomed))
        return 0

    def _release_all(self) -> None:
        w: Words = self.current_words()
        self.span(w)  # checked before anything is freed
        _release_buffer(self, w)

    def __setitem__(self, index: Any, value: Any) -> None:
        if not isinstance(index, slice):
            _Sequence.__setitem__(self, index, value)
            return
        raws = self._encode_all(value)
        with self._changing():
            w: Words = self.current_words()
            current = self.collect(w, False)
            if index.step not in (None, 1):
                targets = range(*index.indices(len(current)))
                if len(targets) != len(raws):
                    raise _caller_error(ValueError(
                        f"attempt to assign sequence of size {len(raws)} to extended slice "
                        f"of size {len(targets)}"))
            current[index] = raws
            data: cython.Py_ssize_t = _reserve(self, w, self.element_size, len(current))
            self.write_from(w, data, b"".join(current), len(current))

    def _verify(self, w: Words, claim: Claim) -> None:
        hw = self.segment_handle >> 3
        data, length, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
        _verify_buffer(self, claim, data, length, capacity, max(self.element_size, 1))

    def reserve(self, capacity: int) -> None:
        """Make room for ``capacity`` elements now; ``BadAlloc`` changes nothing."""
        if not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
        if capacity > len(self._buf):
            raise BadAlloc(f"no room for {capacity} elements of {type(self).__name__}")
        with self._changing():
            w: Words = self.current_words()
            self.span(w)
            _reserve(self, w, self._size(), capacity)

    def memoryview(self) -> builtins.memoryview:
        """A live, zero-copy view of the elements (one dimension, the element's ``struct``
        format; read-only in a read-only segment). In this process, what would move or free
        the buffer under it (growing past ``capacity``, ``clear``, destroying the vector, a
        heap ``grow``) raises ``BufferError`` while the view lives, as with ``bytearray``.
        ``memoryview(vec)`` is this from Python 3.12 (PEP 688); ``numpy.asarray(vec)``
        everywhere."""
        codec = self.element
        if not isinstance(codec, _StructCodec):
            raise TypeError(f"{type(self).__name__} has no buffer: only scalar element types "
                            "(c_int, c_double, ...) do")
        data: cython.Py_ssize_t
        length: cython.Py_ssize_t
        with self.segment.locked():
            data, length = self.span(self.current_words())
            view = self.segment.export_view(data, data, length * self.element_size)
        element_format: Any = codec._struct.format
        return view.cast(element_format)


class SegmentVector(_VectorCore, Generic[T]):
    """A contiguous array in the segment that grows in place when it can (Boost's vector<T>).

    Indexing is O(1); ``insert``/``pop`` away from the end move the tail.
    """

    __slots__ = ()
    _HEADER_SIZE = BUFFER_HEADER_SIZE
    _VARIABLE_ELEMENTS = False

    @classmethod
    def __class_getitem__(cls, element: object) -> type:
        """``SegmentVector[c_int]``: the concrete class for that element type."""
        return cls._specialised(element)

    @property
    def capacity(self) -> int:
        """Elements the current buffer holds without moving."""
        with self._reading():
            return int(self._words()[(self.segment_handle >> 3) + B_CAPACITY])

    # -- the buffer protocol: scalar elements only (``memoryview``) ------------------------
    def __buffer__(self, flags: int, /) -> builtins.memoryview:
        """``memoryview(vec)`` (Python 3.12 and later): ``vec.memoryview()``."""
        return self.memoryview()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        """``numpy.asarray(vec)``: an array over the live elements (a copy only when asked)."""
        from segalloc.arrays import numpy

        np = numpy()
        view = self.memoryview()
        array = np.frombuffer(view, dtype=view.format.lstrip("@"))
        wanted = array.dtype if dtype is None else np.dtype(dtype)
        if copy is False and wanted != array.dtype:
            raise ValueError(f"numpy.asarray({type(self).__name__}, dtype={wanted}) needs a copy")
        return array.astype(wanted) if copy or wanted != array.dtype else array


register_segment_type(SegmentVector, family=SegmentVector.__name__)
