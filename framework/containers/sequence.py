"""The Python list protocol ``SegmentList`` and ``SegmentVector`` share, written once on top
of a few primitives each sequence layout provides.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from segalloc.containers.codecs import _Codec
from segalloc.containers.elements import _codec_for, _spelled
from segalloc.containers.proxy import _caller_error, _Proxy, _specialise
from segalloc.words import Words


class _Sequence(_Proxy):
    """The list protocol, on top of a few primitives each sequence layout provides.

    Primitives (called inside a segment operation with the word view): ``_length``,
    ``_element_span`` (where an element's bytes are and how many), ``_raw_all``,
    ``_insert_raw`` (all or nothing), ``_delete_indices``.
    """

    __slots__ = ()
    _element: ClassVar[_Codec]
    #: whether elements may vary in length (``str``, ``bytes``)
    _VARIABLE_ELEMENTS: ClassVar[bool]

    @classmethod
    def __class_getitem__(cls, element: object) -> type:
        """``SegmentList[c_int]``: the concrete class for that element type."""
        element = _spelled(element)
        codec = _codec_for(element, variable=cls._VARIABLE_ELEMENTS)
        return _specialise(cls, (element,), {"element": codec})

    # -- primitives ----------------------------------------------------------------------
    def _length(self, w: Words) -> int:
        raise NotImplementedError

    def _element_span(self, w: Words, index: int) -> tuple[int, int]:
        raise NotImplementedError

    def _raw_all(self, w: Words) -> list[bytes]:
        raise NotImplementedError

    def _insert_raw(self, w: Words, index: int, raws: list[bytes]) -> None:
        raise NotImplementedError

    def _delete_indices(self, w: Words, indices: list[int]) -> None:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------
    @classmethod
    def _checked_initial(cls, initial: Iterable[Any]) -> list[Any]:
        values = list(initial)
        cls._encode_all(values)
        return values

    @classmethod
    def _encode_all(cls, values: Iterable[Any]) -> list[bytes]:
        encode = cls._element.encode
        return [encode(value) for value in values]

    def _decode(self, raw: bytes) -> Any:
        try:
            return self._element.decode(memoryview(raw), 0, len(raw))
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"a stored text is not UTF-8: {exc}") from None

    def _size(self) -> int:
        size = self._element.size
        assert size is not None, "sequence elements have a fixed size"
        return size

    def _known_size(self) -> int:
        """The element size, or 1 (the least any element takes) when the deep check of a
        process that never named the element type runs on the family's base class."""
        return self._size() if hasattr(self, "_element") else 1

    def _raw_at(self, w: Words, index: int) -> bytes:
        start, length = self._element_span(w, index)
        return bytes(self._buf[start : start + length])

    def _store_at(self, w: Words, index: int, raw: bytes) -> None:
        """Overwrite the element at ``index`` (fixed-size elements: in place)."""
        start, _ = self._element_span(w, index)
        self.segment.write(start, raw)

    def _position(self, w: Words, index: int) -> int:
        if not isinstance(index, int):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, "
                            f"not {type(index).__name__}")
        length = self._length(w)
        position = index + length if index < 0 else index
        if not 0 <= position < length:
            raise _caller_error(IndexError(f"{type(self).__name__} index out of range"))
        return position

    def _snapshot(self) -> list[Any]:
        return [self._decode(raw) for raw in self._raw_all(self._words())]

    def _initialise(self, *initial: Any) -> None:
        self._clear_header()
        if initial:
            self.extend(initial[0])

    def _clear_header(self) -> None:
        raise NotImplementedError

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._reading():
            return self._length(self._words())

    def __getitem__(self, index: int | slice) -> Any:
        with self._reading():
            if isinstance(index, slice):
                return self._snapshot()[index]
            w = self._words()
            return self._decode(self._raw_at(w, self._position(w, index)))

    def __iter__(self) -> Iterator[Any]:
        with self._reading():
            return iter(self._snapshot())

    def __reversed__(self) -> Iterator[Any]:
        with self._reading():
            return iter(self._snapshot()[::-1])

    def __contains__(self, value: object) -> bool:
        try:
            raw = self._element.encode(value)
        except (TypeError, OverflowError):
            return False
        with self._reading():
            return raw in self._raw_all(self._words())

    def count(self, value: Any) -> int:
        """How many elements store the same bytes as ``value``."""
        try:
            raw = self._element.encode(value)
        except (TypeError, OverflowError):
            return 0
        with self._reading():
            return self._raw_all(self._words()).count(raw)

    def index(self, value: Any, start: int = 0, stop: int = sys.maxsize) -> int:
        """The first position of ``value`` in ``[start, stop)``; ``ValueError`` if absent."""
        try:
            raw = self._element.encode(value)
        except (TypeError, OverflowError):
            raw = None
        with self._reading():
            raws = self._raw_all(self._words())
        if raw in raws[start:stop]:
            return raws.index(raw, start, stop)
        raise _caller_error(ValueError(f"{value!r} is not in {type(self).__name__}"))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Sequence):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    # -- changing --------------------------------------------------------------------------
    def __setitem__(self, index: int, value: Any) -> None:
        if isinstance(index, slice):
            raise TypeError(f"{type(self).__name__} does not support slice assignment")
        raw = self._element.encode(value)
        with self._changing():
            w = self._words()
            self._store_at(w, self._position(w, index), raw)

    def __delitem__(self, index: int | slice) -> None:
        with self._changing():
            w = self._words()
            if isinstance(index, slice):
                indices = list(range(*index.indices(self._length(w))))
            else:
                indices = [self._position(w, index)]
            self._delete_indices(w, sorted(set(indices)))

    def insert(self, index: int, value: Any) -> None:
        """Insert before ``index`` (clamped, as ``list.insert``); ``BadAlloc`` changes nothing."""
        raw = self._element.encode(value)
        with self._changing():
            w = self._words()
            length = self._length(w)
            position = index + length if index < 0 else index
            self._insert_raw(w, min(max(position, 0), length), [raw])

    def append(self, value: Any) -> None:
        """Add ``value`` at the end; ``BadAlloc`` changes nothing."""
        raw = self._element.encode(value)
        with self._changing():
            w = self._words()
            self._insert_raw(w, self._length(w), [raw])

    def extend(self, values: Iterable[Any]) -> None:
        """Append every value, all or nothing: ``BadAlloc`` leaves the sequence as it was."""
        raws = self._encode_all(values)
        with self._changing():
            w = self._words()
            if raws:
                self._insert_raw(w, self._length(w), raws)

    def __iadd__(self, values: Iterable[Any]) -> _Sequence:
        self.extend(values)
        return self

    def pop(self, index: int = -1) -> Any:
        """Remove and return the element at ``index`` (the last by default)."""
        with self._changing():
            w = self._words()
            if not self._length(w):
                raise _caller_error(IndexError(f"pop from empty {type(self).__name__}"))
            position = self._position(w, index)
            raw = self._raw_at(w, position)
            self._delete_indices(w, [position])
        return self._decode(raw)

    def remove(self, value: Any) -> None:
        """Remove the first element equal to ``value``; ``ValueError`` if there is none."""
        with self._changing():
            position = self.index(value)
            self._delete_indices(self._words(), [position])

    def clear(self) -> None:
        """Remove every element and free what they used."""
        with self._changing():
            self._words()
            self._release_all()
