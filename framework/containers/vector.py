"""``SegmentVector``: a contiguous array of fixed-size elements in the segment that grows in
place when it can (Boost's vector<T>), with the buffer protocol for scalar elements.
"""

from __future__ import annotations

import builtins
from typing import Any, Generic, TypeVar

from segalloc.containers.buffers import (
    B_CAPACITY,
    B_DATA,
    B_LENGTH,
    BUFFER_HEADER_SIZE,
    _release_buffer,
    _reserve,
    _verify_buffer,
)
from segalloc.containers.codecs import _StructCodec
from segalloc.containers.proxy import _caller_error
from segalloc.containers.sequence import _Sequence
from segalloc.deep_check import Claim, register_segment_type
from segalloc.words import Words

T = TypeVar("T")


class SegmentVector(_Sequence, Generic[T]):
    """A contiguous array in the segment that grows in place when it can (Boost's vector<T>).

    Indexing is O(1); ``insert``/``pop`` away from the end move the tail.
    """

    __slots__ = ()
    _HEADER_SIZE = BUFFER_HEADER_SIZE
    _VARIABLE_ELEMENTS = False

    def _clear_header(self) -> None:
        w = self._words()
        hw = self.segment_handle >> 3
        w[hw + B_DATA] = w[hw + B_LENGTH] = w[hw + B_CAPACITY] = 0

    def _length(self, w: Words) -> int:
        """The stored length, checked against the allocated bytes (``_span`` checks it against
        the capacity and the buffer on every access to the elements)."""
        return self._checked_count(int(w[(self.segment_handle >> 3) + B_LENGTH]), self._size())

    def _span(self, w: Words) -> tuple[int, int]:
        """``(data, length)`` checked against the segment bounds and the allocated bytes."""
        hw = self.segment_handle >> 3
        data, length, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
        size = self._size()
        if length > capacity or data + capacity * size > len(self._buf) or (capacity and not data):
            raise self._corrupt(f"buffer {data} of {capacity} elements ({length} used) is "
                                "outside the segment")
        self._checked_count(capacity, size, "capacity")
        return data, length

    def _element_span(self, w: Words, index: int) -> tuple[int, int]:
        return self._span(w)[0] + index * self._size(), self._size()

    def _raw_all(self, w: Words) -> list[bytes]:
        data, length = self._span(w)
        size = self._size()
        block = bytes(self._buf[data : data + length * size])
        return [block[i : i + size] for i in range(0, length * size, size)]

    def _insert_raw(self, w: Words, index: int, raws: list[bytes]) -> None:
        _, length = self._span(w)
        size = self._size()
        data = _reserve(self, w, size, length + len(raws))
        start, end = data + index * size, data + length * size
        self.segment.write(start, b"".join(raws) + bytes(self._buf[start:end]))
        w[(self.segment_handle >> 3) + B_LENGTH] = length + len(raws)

    def _delete_indices(self, w: Words, indices: list[int]) -> None:
        if not indices:
            return
        data, length = self._span(w)
        size = self._size()
        doomed = set(indices)
        kept = b"".join(
            self._buf[data + i * size : data + (i + 1) * size]
            for i in range(indices[0], length)
            if i not in doomed
        )
        start = data + indices[0] * size
        self.segment.write(start, kept)
        w[(self.segment_handle >> 3) + B_LENGTH] = length - len(doomed)

    def _release_all(self) -> None:
        _release_buffer(self, self._words())

    def __setitem__(self, index: int | slice, value: Any) -> None:
        if not isinstance(index, slice):
            super().__setitem__(index, value)
            return
        raws = self._encode_all(value)
        with self._changing():
            w = self._words()
            current = self._raw_all(w)
            if index.step not in (None, 1):
                targets = range(*index.indices(len(current)))
                if len(targets) != len(raws):
                    raise _caller_error(ValueError(
                        f"attempt to assign sequence of size {len(raws)} to extended slice "
                        f"of size {len(targets)}"))
            current[index] = raws
            self._replace_all(w, current)

    def _replace_all(self, w: Words, raws: list[bytes]) -> None:
        data = _reserve(self, w, self._size(), len(raws))
        block = b"".join(raws)
        self.segment.write(data, block)
        w[(self.segment_handle >> 3) + B_LENGTH] = len(raws)

    def _verify(self, w: Words, claim: Claim) -> None:
        hw = self.segment_handle >> 3
        data, length, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
        _verify_buffer(self, claim, data, length, capacity, self._known_size())

    def reserve(self, capacity: int) -> None:
        """Make room for ``capacity`` elements now; ``BadAlloc`` changes nothing."""
        with self._changing():
            _reserve(self, self._words(), self._size(), capacity)

    @property
    def capacity(self) -> int:
        """Elements the current buffer holds without moving."""
        with self._reading():
            return int(self._words()[(self.segment_handle >> 3) + B_CAPACITY])

    # -- the buffer protocol: scalar elements only -------------------------------------
    def memoryview(self) -> builtins.memoryview:
        """A live, zero-copy view of the elements (one dimension, the element's ``struct``
        format; read-only in a read-only segment). In this process, what would move or free
        the buffer under it (growing past ``capacity``, ``clear``, destroying the vector, a
        heap ``grow``) raises ``BufferError`` while the view lives, as with ``bytearray``.
        ``memoryview(vec)`` is this from Python 3.12 (PEP 688); ``numpy.asarray(vec)``
        everywhere."""
        codec = self._element
        if not isinstance(codec, _StructCodec):
            raise TypeError(f"{type(self).__name__} has no buffer: only scalar element types "
                            "(c_int, c_double, ...) do")
        with self.segment.locked():
            data, length = self._span(self._words())
            view = self.segment.export_view(data, data, length * self._size())
        element_format: Any = codec._struct.format
        return view.cast(element_format)

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
