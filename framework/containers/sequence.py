"""The Python list protocol ``SegmentList`` and ``SegmentVector`` share, written once on top
of a few primitives each sequence layout provides.

Compiled (Cython's pure-Python mode, ``sequence.pxd``): ``_Sequence`` is a C class whose
primitives are C methods the list and the vector override, so an append, an index or an
iteration runs in C from the segment operation to the element; elements of ``c_int64`` are read
as the word they are stored as.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import cython

from segalloc.containers.codecs import _Codec
from segalloc.containers.elements import _codec_for, _spelled
from segalloc.containers.proxy import WORD, _caller_error, _Proxy, _specialise
from segalloc.words import Words

_WORD = cython.declare(cython.Py_ssize_t, WORD)
#: the sequence's read-only questions (``_Proxy.read``)
_ITEM = cython.declare(cython.int, 1)
_ELEMENTS = cython.declare(cython.int, 2)


@cython.cclass
class _Sequence(_Proxy):
    """The list protocol, on top of a few primitives each sequence layout provides.

    Primitives (C methods, called inside a segment operation with the word view): ``length``,
    ``element_span`` (where an element's bytes are and how many), ``collect`` (every element,
    in order), ``insert_raws`` (all or nothing), ``put_raw``, ``delete_positions``,
    ``clear_header``.
    """

    if TYPE_CHECKING:  # the C fields (sequence.pxd) and class constants, as type checkers see them
        element: Any  # a _Codec (None only on an unspecialised generic's deep check)
        element_size: int
        word_elements: bool
        _element: ClassVar[_Codec]
        #: whether elements may vary in length (``str``, ``bytes``)
        _VARIABLE_ELEMENTS: ClassVar[bool]

    def __init__(self, segment: Any, handle: int) -> None:
        _Proxy.__init__(self, segment, handle)
        codec = getattr(type(self), "_element", None)
        self.element = codec
        #: the fixed element size; -1 when elements vary (or the type is not known)
        self.element_size = -1 if codec is None or codec.size is None else codec.size
        self.word_elements = codec is not None and codec.word

    @classmethod
    def _specialised(cls, element: object) -> type:
        """``SegmentList[c_int]``: the concrete class for that element type."""
        element = _spelled(element)
        codec = _codec_for(element, variable=cls._VARIABLE_ELEMENTS)
        return _specialise(cls, (element,), {"element": codec})

    # -- primitives ----------------------------------------------------------------------
    def element_span(self, w: Words, position: cython.Py_ssize_t) -> tuple[cython.Py_ssize_t,
                                                                             cython.Py_ssize_t]:
        raise NotImplementedError

    def collect(self, w: Words, decode: cython.bint) -> list[Any]:
        """Every element in order (a snapshot): decoded, or as its bytes."""
        raise NotImplementedError

    def insert_raws(self, w: Words, index: cython.Py_ssize_t, raws: list) -> cython.int:  # type: ignore[type-arg]
        raise NotImplementedError

    def put_raw(self, w: Words, position: cython.Py_ssize_t, raw: bytes) -> cython.int:
        """Overwrite the element at ``position`` (fixed-size elements: in place)."""
        start: cython.Py_ssize_t
        start, _ = self.element_span(w, position)
        self.journal_room(w, len(raw) // _WORD + 2)
        w.store_bytes(start, raw)
        return 0

    def delete_positions(self, w: Words, positions: list) -> cython.int:  # type: ignore[type-arg]
        raise NotImplementedError

    def clear_header(self, w: Words) -> cython.int:
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

    def value(self, w: Words, buf: Any, start: cython.Py_ssize_t, length: cython.Py_ssize_t,
              decode: cython.bint) -> object:
        """The element whose bytes are ``[start, start + length)`` of ``buf`` (the segment's
        bytes; checked inside it by the primitive that found them): decoded (the word itself
        for ``c_int64``), or its bytes."""
        if not decode:
            return bytes(buf[start : start + length])
        if self.word_elements:
            return w.signed[start >> 3]
        try:
            return self.element.decode(buf, start, length)
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"a stored text is not UTF-8: {exc}") from None

    def value_at(self, w: Words, position: cython.Py_ssize_t, decode: cython.bint) -> object:
        """The element at ``position``, decoded or as its bytes."""
        start: cython.Py_ssize_t
        length: cython.Py_ssize_t
        start, length = self.element_span(w, position)
        return self.value(w, self._buf, start, length, decode)

    def _snapshot(self) -> list[Any]:
        return self.collect(self.current_words(), True)

    def _size(self) -> int:
        assert self.element_size >= 0, "sequence elements have a fixed size"
        return self.element_size

    def position(self, w: Words, index: object) -> cython.Py_ssize_t:
        """``index`` (an int, negative from the end) as a position; ``IndexError`` outside."""
        if not isinstance(index, int):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, "
                            f"not {type(index).__name__}")
        length: cython.Py_ssize_t = self.length(w)
        if not -length <= index < length:
            raise _caller_error(IndexError(f"{type(self).__name__} index out of range"))
        at: cython.Py_ssize_t = index
        return at + length if at < 0 else at

    def _initialise(self, *initial: Any) -> None:
        self.clear_header(self.current_words())
        if initial:
            self.extend(initial[0])

    # -- reading (``_Proxy.read``: without the lock while no writer comes between) ----------
    def answer(self, question: cython.int, w: Words, raw: Any, tag: cython.Py_ssize_t) -> Any:
        """``_ITEM``: the element or slice at the index ``raw``; ``_ELEMENTS``: every element,
        decoded when ``tag`` is 1, else their stored bytes."""
        if question == _ITEM:
            if isinstance(raw, slice):
                return self.collect(w, True)[raw]
            return self.value_at(w, self.position(w, raw), True)
        if question == _ELEMENTS:
            return self.collect(w, tag == 1)
        return _Proxy.answer(self, question, w, raw, tag)

    def __getitem__(self, index: int | slice) -> Any:
        return self.read(_ITEM, index, 0)

    def copy(self) -> list[Any]:
        """A Python list of the elements, in order."""
        return self.read(_ELEMENTS, None, 1)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.copy())

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self.copy())

    def _raw_snapshot(self) -> list[bytes]:
        return self.read(_ELEMENTS, None, 0)

    def __contains__(self, value: object) -> bool:
        try:
            raw = self.element.encode(value)
        except (TypeError, OverflowError):
            return False
        return raw in self._raw_snapshot()

    def count(self, value: Any) -> int:
        """How many elements store the same bytes as ``value``."""
        try:
            raw = self.element.encode(value)
        except (TypeError, OverflowError):
            return 0
        return self._raw_snapshot().count(raw)

    def index(self, value: Any, start: int = 0, stop: int = sys.maxsize) -> int:
        """The first position of ``value`` in ``[start, stop)``; ``ValueError`` if absent."""
        try:
            raw = self.element.encode(value)
        except (TypeError, OverflowError):
            raw = None
        raws = self._raw_snapshot()
        if raw in raws[start:stop]:
            return raws.index(raw, start, stop)
        raise _caller_error(ValueError(f"{value!r} is not in {type(self).__name__}"))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Sequence):
            return self.copy() == other.copy()
        if isinstance(other, list):
            return self.copy() == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    # -- changing --------------------------------------------------------------------------
    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            raise TypeError(f"{type(self).__name__} does not support slice assignment")
        raw: bytes = self.element.encode(value)
        lock = self.enter(True)
        try:
            w: Words = self.current_words()
            self.put_raw(w, self.position(w, index), raw)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)

    def __delitem__(self, index: int | slice) -> None:
        with self._changing():
            w: Words = self.current_words()
            if isinstance(index, slice):
                positions = list(range(*index.indices(self.length(w))))
            else:
                positions = [self.position(w, index)]
            self.delete_positions(w, sorted(set(positions)))

    def insert(self, index: int, value: Any) -> None:
        """Insert before ``index`` (clamped, as ``list.insert``); ``BadAlloc`` changes nothing."""
        raw = self.element.encode(value)
        with self._changing():
            w: Words = self.current_words()
            length = self.length(w)
            position = index + length if index < 0 else index
            self.insert_raws(w, min(max(position, 0), length), [raw])

    def append(self, value: Any) -> None:
        """Add ``value`` at the end; ``BadAlloc`` changes nothing."""
        raws: list[bytes] = [self.element.encode(value)]
        lock = self.enter(True)
        try:
            w: Words = self.current_words()
            self.insert_raws(w, self.length(w), raws)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)

    def extend(self, values: Iterable[Any]) -> None:
        """Append every value, all or nothing: ``BadAlloc`` leaves the sequence as it was."""
        codec: _Codec = self.element
        raws: list[bytes] = [codec.encode(value) for value in values]
        lock = self.enter(True)
        try:
            w: Words = self.current_words()
            if raws:
                self.insert_raws(w, self.length(w), raws)
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)

    def __iadd__(self, values: Iterable[Any]) -> Any:
        self.extend(values)
        return self

    def pop(self, index: int = -1) -> Any:
        """Remove and return the element at ``index`` (the last by default)."""
        lock = self.enter(True)
        try:
            w: Words = self.current_words()
            if not self.length(w):
                raise _caller_error(IndexError(f"pop from empty {type(self).__name__}"))
            position: cython.Py_ssize_t = self.position(w, index)
            found = self.value_at(w, position, True)
            self.delete_positions(w, [position])
        except BaseException as exc:
            raise self.failed(lock, exc)  # noqa: B904
        self.leave(lock)
        return found

    def remove(self, value: Any) -> None:
        """Remove the first element equal to ``value``; ``ValueError`` if there is none."""
        with self._changing():
            position = self.index(value)
            self.delete_positions(self.current_words(), [position])

    def clear(self) -> None:
        """Remove every element and free what they used."""
        with self._changing():
            self.current_words()
            self._release_all()
