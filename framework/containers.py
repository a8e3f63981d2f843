"""Containers that live in a segment: ``SegmentList``, ``SegmentVector``, ``SegmentString``,
``SegmentDict``.

Everything a container keeps is in the segment: its fixed header sits in the constructed
object's block and its nodes and buffers are blocks of the segment's algorithm, linked by
offsets from the segment start. So a container constructed under a name is found again, with
the same contents, from another ``Segment`` object, another process or a byte copy of the
segment. The Python objects users hold are proxies (the segment and the handle, nothing
cached); every operation is one segment operation: under the storage lock, inside the segment's
journal transaction where it has one, so a process killed mid-insert is rolled back whole.

``SegmentList[c_int]`` (any ctypes element type that is not a pointer) makes a concrete
container class, cached per element type; its type identity names the element type by its
storage, never a module (``SegmentList[c_int32]``, see ``segalloc.objects``), so ``find`` with
another element type raises ``TypeError``. Python types may stand for their storage: ``int`` is
``c_int64``, ``float`` ``c_double``, ``bool`` ``c_bool``, ``str`` ``SegmentString``, so
``SegmentDict[str, int] is SegmentDict[SegmentString, c_int64]``. ``SegmentDict[K, V]`` and
``SegmentList[T]`` also take ``SegmentString`` and ``bytes`` (values of any length); a
``SegmentVector`` is one contiguous buffer of fixed-size elements and refuses them. Dict keys
are hashed with CRC-32 of their stored bytes, which every process agrees on (Python's own
``hash`` is salted per process), and compare by those bytes.

Rules every container keeps:

- Exception safety: an operation that cannot get memory raises ``BadAlloc`` before it changes
  anything; a value that cannot be stored raises ``TypeError`` (``OverflowError`` when out of
  range) before any allocation.
- Destroying the object (``seg.destroy`` / ``seg.destroy_ptr``) frees every node and buffer.
- Moved memory: a relocating ``grow`` / ``shrink_to_fit`` of a heap segment bumps
  ``seg.generation``; a proxy taken before raises ``InvalidPointer`` on its next use (it never
  reads the old copy). Fetch it again: ``seg.get_object_from_handle(SegmentList[c_int], h)``.
- Buffer views: ``vec.memoryview()`` and ``numpy.asarray(vec)`` of a scalar ``SegmentVector``
  view its live elements; while one is alive, what would move or free that buffer in this
  process (growing past capacity, ``clear``, destroying it, a heap ``grow``) raises
  ``BufferError``, as ``bytearray`` does while exported.
- Read-only segments: reads work, mutations raise ``ReadOnlySegment``. A closed segment's
  proxies raise ``ValueError``; a destroyed container's proxies must not be used (as in Boost).
- Iteration, slicing and ``keys()``/``values()``/``items()`` return snapshots taken under the
  lock, so they never see a half-done change by another thread or process.
- Damaged bytes raise ``SegmentCorrupt`` naming the container, never an ``IndexError`` or
  ``struct.error`` of the code that trusted them, and cost what the segment really holds:
  every walk detects cycles (``segalloc.walks``) and is bounded by the stored length, which is
  itself checked against the bytes the allocator has handed out before anything is sized by it.
- ``segment_verify`` (the deep check ``Segment.verify`` runs) walks every link, length, bucket
  table and buffer, and claims every block the container owns.
"""

from __future__ import annotations

import builtins
import ctypes
import struct
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from segalloc import objects
from segalloc.deep_check import Claim, register_segment_type
from segalloc.errors import BadAlloc, InvalidPointer, SegallocError, SegmentCorrupt
from segalloc.interfaces import Command
from segalloc.journal import ENTRIES_PER_CALL
from segalloc.walks import LinkWalk

if TYPE_CHECKING:
    from segalloc.interfaces import SegmentAccess

__all__ = ["SegmentDict", "SegmentList", "SegmentString", "SegmentVector"]

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
#: the segment's 64-bit word view: a memoryview, or the journal's logging ctypes array
Words = Any

#: a word is the unit of every link and counter
WORD = 8
#: what code that trusts a damaged word provokes (a word index past the view, a value no word
#: holds, a short buffer): inside a container operation it means ``SegmentCorrupt``
_DAMAGE = (IndexError, ValueError, OverflowError, struct.error)
#: tunable: a stored count whose items take at most this many bytes is used without asking the
#: allocator (the hot paths read counts on every operation); a lie that small costs little and
#: walks still detect cycles. Above it the count must fit in the allocator's used bytes.
_UNCHECKED_BYTES = 1 << 20
#: tunable: first capacity a vector / string buffer gets, in elements
_MIN_CAPACITY = 4
#: tunable: first bucket count of a dict (a power of two); the table doubles at load factor 1
_MIN_BUCKETS = 8

# ------------------------------------------------------------------------------------------
# Codecs: how one Python value is stored as bytes
# ------------------------------------------------------------------------------------------

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

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, buf: memoryview, offset: int, length: int) -> Any:
        raise NotImplementedError


class _StructCodec(_Codec):
    """Scalars ``struct`` can pack: the fast path for ``c_int``, ``c_double``, ..."""

    def __init__(self, ctype: type) -> None:
        self._struct = struct.Struct("@" + str(ctype._type_))  # type: ignore[attr-defined]
        self.size = self._struct.size
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


def _round_up(n: int) -> int:
    return (n + WORD - 1) & -WORD


_ExceptionT = TypeVar("_ExceptionT", bound=BaseException)


def _caller_error(error: _ExceptionT) -> _ExceptionT:
    """Mark an ``IndexError``/``ValueError`` as the API's own answer to the caller (an index
    out of range, a value not found), so ``_Operation`` never mistakes it for damage."""
    setattr(error, _CALLER_MARK, True)
    return error


_CALLER_MARK = "_segalloc_caller_error"


class _Operation:
    """``with proxy._reading()`` / ``proxy._changing()``: one segment operation (the lock, and
    the journal transaction when changing) in which damage a walk trips over becomes
    ``SegmentCorrupt`` naming the container, inside the transaction, so it rolls back."""

    __slots__ = ("_access", "_proxy")

    def __init__(self, proxy: _Proxy, access: Any) -> None:
        self._proxy = proxy
        self._access = access

    def __enter__(self) -> None:
        self._access.__enter__()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: object) -> None:
        if (isinstance(error, _DAMAGE) and not isinstance(error, SegallocError)
                and not getattr(error, _CALLER_MARK, False)):
            corrupt = self._proxy._corrupt(f"a damaged link or size ({type(error).__name__}: "
                                           f"{error})")
            try:
                self._access.__exit__(type(corrupt), corrupt, trace)
            finally:
                raise corrupt from error
        self._access.__exit__(kind, error, trace)


# ------------------------------------------------------------------------------------------
# The proxy every container shares: segment, handle, views, staleness and write checks
# ------------------------------------------------------------------------------------------


class _Proxy:
    """A light handle on a container in a segment (the segment + the container's offset)."""

    __slots__ = ("segment", "segment_handle", "_generation", "_read", "_change")

    #: bytes of the container's fixed header (its constructed object's data)
    _HEADER_SIZE: ClassVar[int]
    #: the type identity; None on an unspecialised generic (``SegmentList`` without ``[T]``)
    _TYPE_ID: ClassVar[str | None] = None

    segment: SegmentAccess
    segment_handle: int

    def __init__(self, segment: SegmentAccess, handle: int) -> None:
        if handle % WORD:
            raise InvalidPointer(f"container handle {handle} is not word-aligned")
        self.segment = segment
        self.segment_handle = handle
        self._generation = segment.generation
        # made once: every operation enters one (they hold no state between uses)
        self._read = _Operation(self, segment.locked())
        self._change = _Operation(self, segment.transaction())

    # -- SegmentType protocol (framework/objects.py) ------------------------------------
    @classmethod
    def segment_sizeof(cls) -> int:
        """Bytes of the container's fixed header."""
        return cls._HEADER_SIZE

    @classmethod
    def segment_type_id(cls) -> str:
        """The identity stored with the object; names the element types."""
        if cls._TYPE_ID is None:
            raise TypeError(f"{cls.__name__} needs its element type, e.g. {cls.__name__}[c_int]")
        return cls._TYPE_ID

    @classmethod
    def segment_prepare(cls, *args: Any) -> tuple[Any, ...]:
        """The initial value, every element encoded once to check it before the segment
        allocates the container (an iterable is read once, into a list)."""
        if len(args) > 1:
            raise TypeError(f"{cls.__name__} takes at most one initial value, got {len(args)}")
        return (cls._checked_initial(args[0]),) if args else ()

    @classmethod
    def _checked_initial(cls, initial: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def segment_construct(cls, segment: SegmentAccess, offset: int, *args: Any) -> Any:
        """Initialise the header at ``offset``, fill it from ``args`` (``segment_prepare``d),
        return a proxy."""
        proxy = cls(segment, offset)
        proxy._initialise(*args)
        return proxy

    @classmethod
    def segment_attach(cls, segment: SegmentAccess, offset: int) -> Any:
        """A proxy for the container already built at ``offset``."""
        return cls(segment, offset)

    @classmethod
    def segment_destroy(cls, segment: SegmentAccess, offset: int) -> None:
        """Free every node and buffer the container owns."""
        cls(segment, offset)._release_all()

    @classmethod
    def segment_verify(cls, segment: SegmentAccess, offset: int, claim: Claim) -> None:
        """The deep check: every link, length and table of the container at ``offset``, and a
        ``claim`` of every block it owns; ``SegmentCorrupt`` names the fault."""
        cls(segment, offset)._verify(segment.words, claim)

    def _initialise(self, *initial: Any) -> None:
        raise NotImplementedError

    def _release_all(self) -> None:
        raise NotImplementedError

    def _verify(self, w: Words, claim: Claim) -> None:
        raise NotImplementedError

    def _check_back_links(self, w: Words, nodes: list[int]) -> None:
        """Each node's PREV (word 1, lists and dicts alike) names the node before it, the
        header's the last: the ring is the same read both ways."""
        h = self.segment_handle
        before = h
        for node in [*nodes, h]:
            if w[(node >> 3) + 1] != before:
                raise self._corrupt(f"node {node} links back to {w[(node >> 3) + 1]}, not {before}")
            before = node

    # -- access (inside ``with segment.locked()`` / ``segment.transaction()``) -----------------
    #
    # Every operation runs as one segment operation: under the storage lock, after recovery of
    # what a dead process left, and inside the segment's journal transaction. Link and counter
    # words are written through the segment's word view and element bytes through
    # ``segment.write``, both logged when the segment has a journal (shared memory, files), so
    # a process killed mid-insert is rolled back whole. Nothing is cached across operations,
    # so a closed segment can unmap at once.

    def _words(self) -> Words:
        """The segment's word view, after checking the memory did not move since the proxy was
        made."""
        segment = self.segment
        if self._generation != segment.generation:
            raise InvalidPointer(
                f"this {type(self).__name__} proxy was taken before the segment's memory moved "
                f"(grow/shrink_to_fit); fetch it again with seg.get_object_from_handle("
                f"{type(self).__name__}, {self.segment_handle})"
            )
        return segment.words

    @property
    def _buf(self) -> memoryview:
        """The segment's bytes, for reading elements (writes go through ``segment.write``)."""
        return self.segment.buffer

    def _reading(self) -> _Operation:
        return self._read

    def _changing(self) -> _Operation:
        return self._change

    def _checked_count(self, count: int, unit: int, what: str = "length") -> int:
        """A count read from the segment, refused unless ``count`` items of ``unit`` bytes fit
        in the bytes the allocator has handed out: nothing may size a walk or a Python object
        by a word that the segment's real contents do not back."""
        if count * unit > _UNCHECKED_BYTES:
            alg = self.segment.algorithm
            if count * unit > alg.size - alg.free_memory:
                raise self._corrupt(f"{what} {count} is more than the allocated blocks can hold")
        return count

    def _allocate_all(self, sizes: list[int]) -> list[int]:
        """One block per size, or ``BadAlloc`` with none of them kept."""
        if not sizes:
            return []
        self.segment.reserve_journal(ENTRIES_PER_CALL * len(sizes))
        blocks = self.segment.algorithm.allocate_many(sizes)
        if blocks is None:
            raise BadAlloc(f"no room for {len(sizes)} {type(self).__name__} nodes")
        return blocks

    def _corrupt(self, why: str) -> SegmentCorrupt:
        return SegmentCorrupt(f"{type(self).__name__} at {self.segment_handle}: {why}")

    def _ring(self, w: Words, length: int) -> list[int]:
        """The nodes of a circular list whose sentinel is the header (lists, and dicts'
        insertion order: the NEXT link is word 0 of the header and of every node), in order;
        ``length`` nodes exactly, no cycle, every link aligned. The list grows as the walk
        confirms nodes, so a lying length costs no memory."""
        h = self.segment_handle
        walk = LinkWalk(length, f"{type(self).__name__} at {h}: the chain", "its stored length")
        nodes: list[int] = []
        node = int(w[h >> 3])
        try:
            for _ in range(length):
                if node == h or node & (WORD - 1):
                    raise self._corrupt(f"bad link {node} after {len(nodes)} items")
                walk.step(node)
                nodes.append(node)
                node = int(w[node >> 3])
        except IndexError:
            raise self._corrupt(f"link {node} points outside the segment") from None
        if node != h:
            raise self._corrupt(f"the chain does not close after {length} items")
        return nodes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        try:
            with self._reading():
                shown = repr(self._snapshot())
        except (InvalidPointer, SegmentCorrupt, ValueError) as exc:
            shown = f"<unreadable: {exc}>"
        return f"{type(self).__name__}({shown})"

    def _snapshot(self) -> Any:
        raise NotImplementedError


def _specialise(base: type, key: tuple[object, ...], codecs: dict[str, _Codec]) -> type:
    """The cached concrete class of ``base`` for element types ``key``."""
    cached = _SPECIALISED.get((base, key))
    if cached is not None:
        return cached
    labels = ", ".join(codec.label for codec in codecs.values())
    ids = ",".join(codec.type_id for codec in codecs.values())
    name = f"{base.__name__}[{labels}]"
    namespace: dict[str, Any] = {
        "__slots__": (),
        "__module__": base.__module__,
        "__qualname__": name,
        "_TYPE_ID": f"{base.__name__}[{ids}]",
        **{f"_{role}": codec for role, codec in codecs.items()},
    }
    cls = type(name, (base,), namespace)
    _SPECIALISED[(base, key)] = cls
    register_segment_type(cls)
    return cls


_SPECIALISED: dict[tuple[type, tuple[object, ...]], type] = {}


# ------------------------------------------------------------------------------------------
# Sequences: SegmentList and SegmentVector share the Python list protocol
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# SegmentList: a circular doubly linked list (Boost's list<T>)
#
#  List header, in the constructed object's block at H (its handle); it is the sentinel of the
#  circular list, so an empty list links to itself:
#
#   H+0   +------------------------------------------+
#         | NEXT     offset of the first node (or H) |  word L_NEXT
#   H+8   +------------------------------------------+
#         | PREV     offset of the last node (or H)  |  word L_PREV
#   H+16  +------------------------------------------+
#         | LENGTH   number of nodes                 |  word L_LENGTH
#   H+24  +------------------------------------------+
#
#  Node (one block of the algorithm each, at N):
#
#   N+0   NEXT  (word L_NEXT)    N+8  PREV  (word L_PREV)    N+16  VALUE  (sizeof(T) bytes)
#
#  Node of a list of values that vary in length (``str``, ``bytes``):
#
#   N+0   NEXT    N+8  PREV    N+16  VLEN  value bytes (word L_VLEN)    N+24  VALUE
# ------------------------------------------------------------------------------------------

L_NEXT = 0
L_PREV = 1
L_LENGTH = 2
L_VLEN = 2
LIST_HEADER_SIZE = 3 * WORD
LIST_VALUE = 2 * WORD
LIST_VARIABLE_VALUE = 3 * WORD


class SegmentList(_Sequence, Generic[T]):
    """A doubly linked list in the segment, with Python's list protocol.

    ``insert``/``pop``/``del`` at either end are O(1); indexing walks from the nearer end.
    """

    __slots__ = ()
    _HEADER_SIZE = LIST_HEADER_SIZE
    _VARIABLE_ELEMENTS = True

    def _clear_header(self) -> None:
        w = self._words()
        h = self.segment_handle
        hw = h >> 3
        w[hw + L_NEXT] = h
        w[hw + L_PREV] = h
        w[hw + L_LENGTH] = 0

    def _length(self, w: Words) -> int:
        """The stored length, checked against the allocated bytes (a node per element)."""
        return self._checked_count(int(w[(self.segment_handle >> 3) + L_LENGTH]),
                                   self._least_node())

    def _least_node(self) -> int:
        """The fewest bytes a node takes (links, a length when values vary, a fixed-size
        value), which bounds how many nodes the allocated bytes can hold; the least of every
        layout when a process that never named the element type runs the deep check."""
        if not hasattr(self, "_element"):
            return LIST_VALUE + 1
        return self._value_offset() + (self._element.size or 0)

    def _nodes(self, w: Words) -> list[int]:
        """Every node offset in order, checking the links as it walks."""
        return self._ring(w, self._length(w))

    def _node_at(self, w: Words, position: int) -> int:
        """The node at ``position`` (0 <= position < length), walking from the nearer end."""
        h = self.segment_handle
        length = self._length(w)
        if position < length // 2 + 1:
            node, link, steps = w[(h >> 3) + L_NEXT], L_NEXT, position
        else:
            node, link, steps = w[(h >> 3) + L_PREV], L_PREV, length - 1 - position
        try:
            for _ in range(steps):
                if node == h or node & (WORD - 1):
                    raise self._corrupt(f"bad link {node} on the way to item {position}")
                node = w[(node >> 3) + link]
        except IndexError:
            raise self._corrupt(f"link {node} points outside the segment") from None
        if node == h or node & (WORD - 1):
            raise self._corrupt(f"bad link {node} on the way to item {position}")
        return int(node)

    def _value_offset(self) -> int:
        """Where a node's value starts: after the links, and the length when values vary."""
        return LIST_VALUE if self._element.size is not None else LIST_VARIABLE_VALUE

    def _value_span(self, w: Words, node: int) -> tuple[int, int]:
        """``(start, bytes)`` of a node's value, refused when a damaged length puts it past
        the segment's end."""
        size = self._element.size
        if size is not None:
            return node + LIST_VALUE, size
        try:
            length = int(w[(node >> 3) + L_VLEN])
        except IndexError:
            raise self._corrupt(f"node {node} lies outside the segment") from None
        start = node + LIST_VARIABLE_VALUE
        if start + length > len(self._buf):
            raise self._corrupt(f"the value of node {node} runs past the segment's end")
        return start, length

    def _element_span(self, w: Words, index: int) -> tuple[int, int]:
        return self._value_span(w, self._node_at(w, index))

    def _raw_all(self, w: Words) -> list[bytes]:
        buf = self._buf
        spans = [self._value_span(w, node) for node in self._nodes(w)]
        return [bytes(buf[start : start + length]) for start, length in spans]

    def _fill_node(self, w: Words, node: int, raw: bytes) -> None:
        if self._element.size is None:
            w[(node >> 3) + L_VLEN] = len(raw)
        self.segment.write(node + self._value_offset(), raw)

    def _store_at(self, w: Words, index: int, raw: bytes) -> None:
        """Overwrite in place when the length is the same, else swap in a new node (allocated
        first: ``BadAlloc`` changes nothing)."""
        old = self._node_at(w, index)
        start, length = self._value_span(w, old)
        if length == len(raw):
            self.segment.write(start, raw)
            return
        (new,) = self._allocate_all([self._value_offset() + len(raw)])
        self._fill_node(w, new, raw)
        ow, nw = old >> 3, new >> 3
        after, before = int(w[ow + L_NEXT]), int(w[ow + L_PREV])
        w[nw + L_NEXT], w[nw + L_PREV] = after, before
        w[(before >> 3) + L_NEXT] = new
        w[(after >> 3) + L_PREV] = new
        self.segment.algorithm.deallocate(old)

    def _insert_raw(self, w: Words, index: int, raws: list[bytes]) -> None:
        h = self.segment_handle
        hw = h >> 3
        successor = h if index == self._length(w) else self._node_at(w, index)
        nodes = self._allocate_all([self._value_offset() + len(raw) for raw in raws])
        predecessor = int(w[(successor >> 3) + L_PREV])
        for node, raw in zip(nodes, raws, strict=True):
            self._fill_node(w, node, raw)
            nw = node >> 3
            w[nw + L_PREV] = predecessor
            w[(predecessor >> 3) + L_NEXT] = node
            predecessor = node
        w[(predecessor >> 3) + L_NEXT] = successor
        w[(successor >> 3) + L_PREV] = predecessor
        w[hw + L_LENGTH] += len(nodes)

    def _delete_indices(self, w: Words, indices: list[int]) -> None:
        if not indices:
            return
        if len(indices) == 1:
            doomed = [self._node_at(w, indices[0])]
        else:
            nodes = self._nodes(w)
            doomed = [nodes[i] for i in indices]
        deallocate = self.segment.algorithm.deallocate
        self.segment.reserve_journal((ENTRIES_PER_CALL + 2) * len(doomed) + 1)
        for node in doomed:
            nw = node >> 3
            after, before = w[nw + L_NEXT], w[nw + L_PREV]
            w[(before >> 3) + L_NEXT] = after
            w[(after >> 3) + L_PREV] = before
            deallocate(node)
        w[(self.segment_handle >> 3) + L_LENGTH] -= len(doomed)

    def _release_all(self) -> None:
        w = self._words()
        deallocate = self.segment.algorithm.deallocate
        nodes = self._nodes(w)
        self.segment.reserve_journal(ENTRIES_PER_CALL * len(nodes) + 8)
        for node in nodes:
            deallocate(node)
        self._clear_header()

    def _verify(self, w: Words, claim: Claim) -> None:
        least = self._least_node()
        length = self._checked_count(int(w[(self.segment_handle >> 3) + L_LENGTH]), least)
        nodes = self._ring(w, length)
        self._check_back_links(w, nodes)
        known = hasattr(self, "_element")
        for node in nodes:
            start, size = self._value_span(w, node) if known else (node + least, 0)
            claim(node, start - node + size)

    def appendleft(self, value: Any) -> None:
        """Add ``value`` at the front (Boost's ``push_front``); ``BadAlloc`` changes nothing."""
        self.insert(0, value)


# ------------------------------------------------------------------------------------------
# Growable buffers: SegmentVector and SegmentString keep their elements in one block
#
#  Buffer header, in the constructed object's block at H:
#
#   H+0   +------------------------------------------+
#         | DATA      offset of the buffer block / 0 |  word B_DATA
#   H+8   +------------------------------------------+
#         | LENGTH    elements in use                |  word B_LENGTH
#   H+16  +------------------------------------------+
#         | CAPACITY  elements the buffer holds      |  word B_CAPACITY
#   H+24  +------------------------------------------+
#
#  (SegmentString adds H+24 CHARS, the code-point count, and counts its elements in bytes.)
# ------------------------------------------------------------------------------------------

B_DATA = 0
B_LENGTH = 1
B_CAPACITY = 2
BUFFER_HEADER_SIZE = 3 * WORD


def _reserve(proxy: _Proxy, w: Words, elem_size: int, needed: int) -> int:
    """Make room for ``needed`` elements; the buffer's offset. Expands in place when the
    algorithm can (``EXPAND_FWD``), else moves to a new block; ``BadAlloc`` changes nothing."""
    seg = proxy.segment
    hw = proxy.segment_handle >> 3
    data, length, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
    if needed <= capacity:
        return data
    wanted = max(needed, capacity + capacity // 2, _MIN_CAPACITY)
    if data:
        offset, received = seg.allocation_command(
            Command.EXPAND_FWD | Command.NOTHROW, needed * elem_size, wanted * elem_size, data
        )
        if offset is not None:
            assert offset == data, "a forward expansion keeps the block where it is"
            w[hw + B_CAPACITY] = received // elem_size
            return data
    if data:
        seg.refuse_if_viewed(data, f"growing this {type(proxy).__name__} past its capacity")
    offset, received = seg.allocation_command(
        Command.ALLOCATE_NEW | Command.NOTHROW, needed * elem_size, wanted * elem_size
    )
    if offset is None:
        raise BadAlloc(f"no room for {needed} elements of {type(proxy).__name__}")
    used = length * elem_size
    proxy.segment.write(offset, bytes(proxy._buf[data : data + used]))
    if data:
        seg.algorithm.deallocate(data)
    w[hw + B_DATA] = offset
    w[hw + B_CAPACITY] = received // elem_size
    return offset


def _release_buffer(proxy: _Proxy, w: Words) -> None:
    hw = proxy.segment_handle >> 3
    if w[hw + B_DATA]:
        proxy.segment.refuse_if_viewed(int(w[hw + B_DATA]), f"freeing this {type(proxy).__name__}'s buffer")
        proxy.segment.algorithm.deallocate(w[hw + B_DATA])
    w[hw + B_DATA] = w[hw + B_LENGTH] = w[hw + B_CAPACITY] = 0


def _verify_buffer(proxy: _Proxy, claim: Claim, data: int, length: int, capacity: int,
                   size: int) -> None:
    """A growable buffer's fields agree (length within capacity; no block, no capacity) and
    its block is live, holds the capacity and belongs to this container alone."""
    if length > capacity or bool(data) != bool(capacity) or data & (WORD - 1):
        raise proxy._corrupt(f"buffer {data} of capacity {capacity} cannot hold {length} items")
    proxy._checked_count(capacity, size, "capacity")
    if data:
        claim(data, capacity * size)


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


# ------------------------------------------------------------------------------------------
# SegmentString: UTF-8 text in a growable buffer
# ------------------------------------------------------------------------------------------

S_CHARS = 3
STRING_HEADER_SIZE = BUFFER_HEADER_SIZE + WORD


class SegmentString(_Proxy):
    """Mutable text in the segment, compared and sliced like ``str``.

    Stored as UTF-8 (any other process reads the same bytes); the code-point count is kept so
    ``len`` is O(1); indexing and slicing decode the text (O(n)).
    """

    __slots__ = ()
    _HEADER_SIZE = STRING_HEADER_SIZE
    _TYPE_ID = "SegmentString"
    _codec = _StrCodec()

    @classmethod
    def _checked_initial(cls, initial: Any) -> str:
        cls._codec.encode(initial)
        return str(initial)

    def _initialise(self, *initial: Any) -> None:
        self._release_header(self._words())
        if initial:
            self.assign(initial[0])

    def _release_header(self, w: Words) -> None:
        hw = self.segment_handle >> 3
        w[hw + B_DATA] = w[hw + B_LENGTH] = w[hw + B_CAPACITY] = w[hw + S_CHARS] = 0

    def _release_all(self) -> None:
        w = self._words()
        _release_buffer(self, w)
        self._release_header(w)

    def _fields(self, w: Words) -> tuple[int, int, int]:
        """``(data, bytes, code points)``, checked against each other (UTF-8 takes one to four
        bytes a code point), the segment bounds and the allocated bytes."""
        hw = self.segment_handle >> 3
        data, nbytes, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
        chars = int(w[hw + S_CHARS])
        if nbytes > capacity or data + capacity > len(self._buf) or (capacity and not data):
            raise self._corrupt(f"text buffer {data} of {capacity} bytes is outside the segment")
        if not chars <= nbytes <= 4 * chars:
            raise self._corrupt(f"{chars} code points cannot take {nbytes} bytes of UTF-8")
        self._checked_count(capacity, 1, "capacity")
        return data, nbytes, chars

    def _verify(self, w: Words, claim: Claim) -> None:
        hw = self.segment_handle >> 3
        data, nbytes, capacity = int(w[hw + B_DATA]), int(w[hw + B_LENGTH]), int(w[hw + B_CAPACITY])
        _verify_buffer(self, claim, data, nbytes, capacity, 1)
        self._snapshot()

    def _snapshot(self) -> str:
        data, nbytes, chars = self._fields(self._words())
        try:
            text: str = self._codec.decode(self._buf, data, nbytes)
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"text is not UTF-8: {exc}") from None
        if len(text) != chars:
            raise self._corrupt(f"the text has {len(text)} code points, its length says {chars}")
        return text

    def _store(self, w: Words, text: str, keep: int = 0) -> None:
        """Make the text ``text``, whose first ``keep`` bytes are already in place."""
        raw = self._codec.encode(text)
        data = _reserve(self, w, 1, len(raw))
        self.segment.write(data + keep, raw[keep:])
        hw = self.segment_handle >> 3
        w[hw + B_LENGTH] = len(raw)
        w[hw + S_CHARS] = len(text)

    def _edit(self, text: object, change: Callable[[str], str]) -> None:
        """Apply ``change(old_text) -> new_text`` all or nothing."""
        if not isinstance(text, str):
            raise TypeError(f"SegmentString holds str, not {type(text).__name__}")
        with self._changing():
            w = self._words()
            self._store(w, change(self._snapshot()))

    # -- reading ---------------------------------------------------------------------------
    def __str__(self) -> str:
        with self._reading():
            return self._snapshot()

    def __len__(self) -> int:
        with self._reading():
            return self._fields(self._words())[2]

    def __getitem__(self, index: int | slice) -> str:
        return str(self)[index]

    def __iter__(self) -> Iterator[str]:
        return iter(str(self))

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and text in str(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, SegmentString)):
            return str(self) == str(other)
        return NotImplemented

    def encode(self) -> bytes:
        """The stored UTF-8 bytes."""
        return self._codec.encode(str(self))

    # -- changing --------------------------------------------------------------------------
    def assign(self, text: str) -> None:
        """Replace the whole text; ``BadAlloc`` changes nothing."""
        self._edit(text, lambda _old: text)

    def append(self, text: str) -> None:
        """Add ``text`` at the end, writing only the new bytes."""
        if not isinstance(text, str):
            raise TypeError(f"SegmentString holds str, not {type(text).__name__}")
        with self._changing():
            w = self._words()
            used = int(w[(self.segment_handle >> 3) + B_LENGTH])
            self._store(w, self._snapshot() + text, keep=used)

    def __iadd__(self, text: str) -> SegmentString:
        self.append(text)
        return self

    def insert(self, index: int, text: str) -> None:
        """Insert ``text`` before code point ``index`` (clamped, as ``list.insert``)."""
        self._edit(text, lambda old: old[:index] + text + old[index:])

    def __delitem__(self, index: int | slice) -> None:
        def without(old: str) -> str:
            chars = list(old)
            try:
                del chars[index]
            except IndexError as exc:
                raise _caller_error(IndexError(str(exc))) from None
            return "".join(chars)

        self._edit("", without)

    def clear(self) -> None:
        """Make the text empty and free its buffer."""
        with self._changing():
            self._release_all()


# ------------------------------------------------------------------------------------------
# SegmentDict: a chained hash table whose nodes also keep insertion order (as Python's dict)
#
#  Dict header, in the constructed object's block at H; it is the sentinel of the circular
#  insertion-order list:
#
#   H+0   +------------------------------------------+
#         | NEXT     first node in insertion order/H |  word D_NEXT
#   H+8   +------------------------------------------+
#         | PREV     last node in insertion order/H  |  word D_PREV
#   H+16  +------------------------------------------+
#         | LENGTH   number of items                 |  word D_LENGTH
#   H+24  +------------------------------------------+
#         | BUCKETS  offset of the bucket array / 0  |  word D_BUCKETS
#   H+32  +------------------------------------------+
#         | COUNT    buckets (a power of two) / 0    |  word D_COUNT
#   H+40  +------------------------------------------+
#
#  Bucket array: COUNT words, each the offset of the first node of its chain (0: empty).
#
#  Node (one block each, at N):
#
#   N+0   NEXT   insertion order                      word D_NEXT
#   N+8   PREV   insertion order                      word D_PREV
#   N+16  CHAIN  next node in the same bucket (0)     word N_CHAIN
#   N+24  KEYTAG CRC-32 of the key (low 32 bits) | key bytes << 32    word N_KEYTAG
#   N+32  VLEN   value bytes                          word N_VLEN
#   N+40  key bytes, then the value at N+40+round8(key bytes)
# ------------------------------------------------------------------------------------------

D_NEXT = 0
D_PREV = 1
D_LENGTH = 2
D_BUCKETS = 3
D_COUNT = 4
DICT_HEADER_SIZE = 5 * WORD
N_CHAIN = 2
N_KEYTAG = 3
N_VLEN = 4
NODE_KEY = 5 * WORD


def _key_tag(raw_key: bytes) -> int:
    return zlib.crc32(raw_key) | len(raw_key) << 32


class SegmentDict(_Proxy, Generic[K, V]):
    """A mapping in the segment with Python's dict protocol, insertion order included.

    ``keys()``, ``values()`` and ``items()`` are views of a snapshot (a Python dict copy).
    """

    __slots__ = ()
    _HEADER_SIZE = DICT_HEADER_SIZE
    _key: ClassVar[_Codec]
    _value: ClassVar[_Codec]

    @classmethod
    def __class_getitem__(cls, types: object) -> type:
        """``SegmentDict[SegmentString, c_int]``: the concrete class for those types."""
        if not isinstance(types, tuple) or len(types) != 2:
            raise TypeError("SegmentDict needs a key and a value type: SegmentDict[K, V]")
        key, value = _spelled(types[0]), _spelled(types[1])
        return _specialise(cls, (key, value), {
            "key": _codec_for(key, variable=True),
            "value": _codec_for(value, variable=True),
        })

    @classmethod
    def _checked_initial(cls, initial: Any) -> list[tuple[Any, Any]]:
        pairs = list(initial.items() if isinstance(initial, Mapping) else initial)
        for key, value in pairs:
            cls._key.encode(key)
            cls._value.encode(value)
        return pairs

    # -- layout helpers (under the lock) ------------------------------------------------------
    def _initialise(self, *initial: Any) -> None:
        w = self._words()
        h = self.segment_handle
        hw = h >> 3
        w[hw + D_NEXT] = w[hw + D_PREV] = h
        w[hw + D_LENGTH] = w[hw + D_BUCKETS] = w[hw + D_COUNT] = 0
        if initial:
            self.update(initial[0])

    def _length(self, w: Words) -> int:
        """The stored item count, checked against the allocated bytes (a node per item)."""
        return self._checked_count(int(w[(self.segment_handle >> 3) + D_LENGTH]), NODE_KEY)

    def _nodes(self, w: Words) -> list[int]:
        return self._ring(w, self._length(w))

    def _table(self, w: Words) -> tuple[int, int]:
        """``(bucket array, bucket count)``; refused unless the count is a power of two (a
        mask of any other count would send keys to buckets they were never filed in) and the
        array lies in the segment."""
        hw = self.segment_handle >> 3
        table, count = int(w[hw + D_BUCKETS]), int(w[hw + D_COUNT])
        if count & (count - 1) or bool(table) != bool(count) or table & (WORD - 1):
            raise self._corrupt(f"bucket table {table} of {count} buckets is impossible "
                                "(the count must be a power of two)")
        if table + count * WORD > len(self._buf):
            raise self._corrupt(f"bucket table {table} of {count} buckets is outside the segment")
        self._checked_count(count, WORD, "bucket count")
        return table, count

    def _bucket_word(self, w: Words, tag: int) -> int:
        """The word index of the bucket head for a key tag (the table must exist)."""
        table, count = self._table(w)
        return (table >> 3) + (tag & 0xFFFFFFFF & (count - 1))

    def _find(self, w: Words, raw_key: bytes, tag: int) -> tuple[int, int]:
        """``(node, word that links to it)`` for ``raw_key``; node 0 when absent."""
        table, count = self._table(w)
        if not count:
            return 0, 0
        link = (table >> 3) + (tag & 0xFFFFFFFF & (count - 1))
        walk = LinkWalk(self._length(w), f"{type(self).__name__} at {self.segment_handle}: "
                                         "a bucket chain", "its stored length")
        buf, klen = self._buf, len(raw_key)
        try:
            while True:
                node = int(w[link])
                if not node:
                    return 0, 0
                if node & (WORD - 1):
                    raise self._corrupt(f"bad chain link {node}")
                walk.step(node)
                if w[(node >> 3) + N_KEYTAG] == tag and buf[node + NODE_KEY : node + NODE_KEY
                                                            + klen] == raw_key:
                    return node, link
                link = (node >> 3) + N_CHAIN
        except IndexError:
            raise self._corrupt("a chain link points outside the segment") from None

    def _lengths(self, w: Words, node: int) -> tuple[int, int]:
        """``(key bytes, value bytes)`` of an item; lengths beyond what is read unchecked
        must fit in the item's block before anything is copied by them."""
        klen = int(w[(node >> 3) + N_KEYTAG]) >> 32
        vlen = int(w[(node >> 3) + N_VLEN])
        if klen + vlen > _UNCHECKED_BYTES:
            needed = NODE_KEY + _round_up(klen) + vlen
            if self.segment.algorithm.usable_size(node) < needed:
                raise self._corrupt(f"item {node} claims {klen} + {vlen} bytes, more than its "
                                    "block holds")
        return klen, vlen

    def _value_at(self, w: Words, node: int) -> Any:
        klen, vlen = self._lengths(w, node)
        return self._decoded(self._value, node + NODE_KEY + _round_up(klen), vlen)

    def _key_at(self, w: Words, node: int) -> Any:
        klen = self._lengths(w, node)[0]
        return self._decoded(self._key, node + NODE_KEY, klen)

    def _decoded(self, codec: _Codec, at: int, length: int) -> Any:
        """A stored key or value, refused when damaged lengths put it past the segment's end
        or its text is not UTF-8."""
        if at + (codec.size or length) > len(self._buf):
            raise self._corrupt(f"a key or value at {at} runs past the segment's end")
        try:
            return codec.decode(self._buf, at, length)
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"a stored text is not UTF-8: {exc}") from None

    def _lookup(self, key: Any) -> tuple[bytes, int] | None:
        """``(raw_key, tag)``, or None for a key this dict cannot hold (so it is absent)."""
        try:
            raw = self._key.encode(key)
        except (TypeError, OverflowError):
            return None
        return raw, _key_tag(raw)

    def _fill_node(self, w: Words, node: int, raw_key: bytes, tag: int, raw: bytes) -> None:
        nw = node >> 3
        w[nw + N_KEYTAG] = tag
        w[nw + N_VLEN] = len(raw)
        value = node + NODE_KEY + _round_up(len(raw_key))
        self.segment.write(node + NODE_KEY, raw_key)
        self.segment.write(value, raw)

    def _rehash(self, w: Words, count: int) -> bool:
        """Move every node into a new table of ``count`` buckets; False (nothing changed)
        when there is no room for it."""
        self.segment.reserve_journal(2 * count + 2 * int(w[(self.segment_handle >> 3) + D_LENGTH])
                                     + 2 * ENTRIES_PER_CALL)
        table = self.segment.algorithm.allocate(count * WORD)
        if table is None:
            return False
        hw = self.segment_handle >> 3
        old = int(w[hw + D_BUCKETS])
        self.segment.write(table, bytes(count * WORD))
        w[hw + D_BUCKETS], w[hw + D_COUNT] = table, count
        for node in self._nodes(w):
            head = self._bucket_word(w, int(w[(node >> 3) + N_KEYTAG]))
            w[(node >> 3) + N_CHAIN] = w[head]
            w[head] = node
        if old:
            self.segment.algorithm.deallocate(old)
        return True

    def _assign(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Set every (key, value), all or nothing: nodes (and the first table) are allocated
        before anything changes."""
        final: dict[bytes, bytes] = {}
        for key, value in pairs:
            final[self._key.encode(key)] = self._value.encode(value)
        with self._changing():
            w = self._words()
            hw = self.segment_handle >> 3
            plan = []
            for raw_key, raw in final.items():
                tag = _key_tag(raw_key)
                node, link = self._find(w, raw_key, tag)
                in_place = node and w[(node >> 3) + N_VLEN] == len(raw)
                plan.append((raw_key, tag, raw, node, link, in_place))
            sizes = [NODE_KEY + _round_up(len(k)) + len(v) for k, _, v, _, _, same in plan
                     if not same]
            fresh = self._allocate_all(sizes)
            if fresh and not w[hw + D_COUNT] and not self._rehash(w, _MIN_BUCKETS):
                self.segment.reserve_journal(ENTRIES_PER_CALL * len(fresh))
                self.segment.algorithm.deallocate_many(fresh)
                raise BadAlloc(f"no room for the {type(self).__name__} bucket table")
            spare = iter(fresh)
            for raw_key, tag, raw, node, _, in_place in plan:
                if in_place:
                    self._fill_node(w, node, raw_key, tag, raw)
                    continue
                new = next(spare)
                self._fill_node(w, new, raw_key, tag, raw)
                node, link = self._find(w, raw_key, tag)
                if node:
                    self._replace_node(w, node, link, new)
                else:
                    self._add_node(w, new, tag)

    def _add_node(self, w: Words, node: int, tag: int) -> None:
        h = self.segment_handle
        hw, nw = h >> 3, node >> 3
        count = int(w[hw + D_COUNT])
        if w[hw + D_LENGTH] >= count:
            self._rehash(w, count * 2)  # no room: the chains just get longer
        head = self._bucket_word(w, tag)
        w[nw + N_CHAIN] = w[head]
        w[head] = node
        last = int(w[hw + D_PREV])
        w[nw + D_NEXT], w[nw + D_PREV] = h, last
        w[(last >> 3) + D_NEXT] = node
        w[hw + D_PREV] = node
        w[hw + D_LENGTH] += 1

    def _replace_node(self, w: Words, old: int, link: int, new: int) -> None:
        ow, nw = old >> 3, new >> 3
        after, before = int(w[ow + D_NEXT]), int(w[ow + D_PREV])
        w[nw + D_NEXT], w[nw + D_PREV], w[nw + N_CHAIN] = after, before, w[ow + N_CHAIN]
        w[(before >> 3) + D_NEXT] = new
        w[(after >> 3) + D_PREV] = new
        w[link] = new
        self.segment.algorithm.deallocate(old)

    def _remove_node(self, w: Words, node: int, link: int) -> None:
        nw = node >> 3
        w[link] = w[nw + N_CHAIN]
        after, before = int(w[nw + D_NEXT]), int(w[nw + D_PREV])
        w[(before >> 3) + D_NEXT] = after
        w[(after >> 3) + D_PREV] = before
        w[(self.segment_handle >> 3) + D_LENGTH] -= 1
        self.segment.algorithm.deallocate(node)

    def _release_all(self) -> None:
        w = self._words()
        hw = self.segment_handle >> 3
        deallocate = self.segment.algorithm.deallocate
        nodes = self._nodes(w)
        self.segment.reserve_journal(ENTRIES_PER_CALL * (len(nodes) + 1) + 8)
        for node in nodes:
            deallocate(node)
        if w[hw + D_BUCKETS]:
            deallocate(w[hw + D_BUCKETS])
        self._initialise()

    def _snapshot(self) -> dict[Any, Any]:
        w = self._words()
        return {self._key_at(w, node): self._value_at(w, node) for node in self._nodes(w)}

    def _verify(self, w: Words, claim: Claim) -> None:
        nodes = self._nodes(w)
        self._check_back_links(w, nodes)
        table, count = self._table(w)
        if nodes and not count:
            raise self._corrupt(f"{len(nodes)} items but no bucket table")
        if count:
            claim(table, count * WORD)
        buf = self._buf
        for node in nodes:
            tag, vlen = int(w[(node >> 3) + N_KEYTAG]), int(w[(node >> 3) + N_VLEN])
            klen = tag >> 32
            claim(node, NODE_KEY + _round_up(klen) + vlen)
            if zlib.crc32(buf[node + NODE_KEY : node + NODE_KEY + klen]) != tag & 0xFFFFFFFF:
                raise self._corrupt(f"item {node} has a damaged key hash")
            if hasattr(self, "_key"):
                for codec, length in ((self._key, klen), (self._value, vlen)):
                    if codec.size is not None and codec.size != length:
                        raise self._corrupt(f"item {node} stores {length} bytes for a "
                                            f"{codec.label} of {codec.size}")
                self._key_at(w, node)
                self._value_at(w, node)
        self._check_chains(w, table, count, nodes)

    def _check_chains(self, w: Words, table: int, count: int, nodes: list[int]) -> None:
        """Every item sits in the chain of the bucket its key hash names, once, and the
        chains hold nothing else."""
        unfiled = set(nodes)
        walk = LinkWalk(len(nodes), f"{type(self).__name__} at {self.segment_handle}: "
                                    "the bucket chains", "its items")
        for bucket in range(count):
            node = int(w[(table >> 3) + bucket])
            while node:
                walk.step(node)
                if node not in unfiled:
                    raise self._corrupt(f"bucket {bucket} holds {node}, not an item (or twice)")
                if int(w[(node >> 3) + N_KEYTAG]) & (count - 1) != bucket:
                    raise self._corrupt(f"item {node} is in bucket {bucket}, its hash names "
                                        "another")
                unfiled.discard(node)
                node = int(w[(node >> 3) + N_CHAIN])
        if unfiled:
            raise self._corrupt(f"item {min(unfiled)} is in no bucket chain")

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._reading():
            return self._length(self._words())

    def __getitem__(self, key: Any) -> Any:
        found = self._lookup(key)
        with self._reading():
            w = self._words()
            node = self._find(w, *found)[0] if found else 0
            if not node:
                raise KeyError(key)
            return self._value_at(w, node)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        found = self._lookup(key)
        if found is None:
            return False
        with self._reading():
            return self._find(self._words(), *found)[0] != 0

    def copy(self) -> dict[Any, Any]:
        """A Python dict with the same items, in insertion order."""
        with self._reading():
            return self._snapshot()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.copy())

    def keys(self) -> Any:
        """The keys, as a view of a snapshot."""
        return self.copy().keys()

    def values(self) -> Any:
        """The values, as a view of a snapshot."""
        return self.copy().values()

    def items(self) -> Any:
        """The (key, value) pairs, as a view of a snapshot."""
        return self.copy().items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SegmentDict):
            return self.copy() == other.copy()
        if isinstance(other, Mapping):
            return self.copy() == dict(other)
        return NotImplemented

    # -- changing --------------------------------------------------------------------------
    def __setitem__(self, key: Any, value: Any) -> None:
        self._assign([(key, value)])

    def update(self, other: Any = (), **kwargs: Any) -> None:
        """Set every item of ``other`` (a mapping or pairs) and ``kwargs``, all or nothing."""
        pairs = list(other.items() if isinstance(other, Mapping) else other)
        self._assign(pairs + list(kwargs.items()))

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``; if absent, store ``default`` first."""
        with self._changing():
            if key in self:
                return self[key]
            self[key] = default
            return default

    def __delitem__(self, key: Any) -> None:
        self._pop(key)

    def _pop(self, key: Any) -> Any:
        found = self._lookup(key)
        with self._changing():
            w = self._words()
            node, link = self._find(w, *found) if found else (0, 0)
            if not node:
                raise KeyError(key)
            value = self._value_at(w, node)
            self._remove_node(w, node, link)
            return value

    _MISSING: ClassVar[object] = object()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default`` or ``KeyError`` when absent)."""
        try:
            return self._pop(key)
        except KeyError:
            if default is SegmentDict._MISSING:
                raise
            return default

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the last inserted (key, value), as ``dict.popitem``."""
        with self._changing():
            w = self._words()
            if not w[(self.segment_handle >> 3) + D_LENGTH]:
                raise KeyError("popitem(): dictionary is empty")
            last = int(w[(self.segment_handle >> 3) + D_PREV])
            tag = int(w[(last >> 3) + N_KEYTAG])
            raw_key = bytes(self._buf[last + NODE_KEY : last + NODE_KEY + self._lengths(w, last)[0]])
            node, link = self._find(w, raw_key, tag)
            if node != last:
                raise self._corrupt(f"the last item {last} is not in its bucket chain")
            item = self._key_at(w, last), self._value_at(w, last)
            self._remove_node(w, last, link)
            return item

    def clear(self) -> None:
        """Remove every item and free the nodes and the table."""
        with self._changing():
            self._release_all()


for _family in (SegmentList, SegmentVector, SegmentDict):
    register_segment_type(_family, family=_family.__name__)
register_segment_type(SegmentString)
