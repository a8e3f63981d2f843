# cython: annotation_typing=False
"""The named-object manager: construct / find / destroy / listing over the raw segment.

``Segment`` adds to ``segalloc.segment.RawSegment`` what Boost's segment manager adds to its
memory algorithm: objects under a name, one ``UNIQUE`` instance per type, anonymous ones, and
numpy arrays (``segalloc.arrays``), each with a header entry in the segment's name index
(``segalloc.names``). Objects handed out are live views of the bytes: ctypes objects and numpy
arrays over the buffer, read-only twins of them in a read-only segment (``segalloc.readonly``),
and ``segalloc.exports`` counts them so that memory never moves under one. ``NamedSegment``
is the segment of a backend whose object has a name (shared memory, a file).
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, NoReturn, ParamSpec, TypeVar, overload

from segalloc import arrays, objects
from segalloc.core import check_handle, check_size
from segalloc.errors import (
    BadAlloc,
    InvalidPointer,
    NameExists,
    SegmentCorrupt,
)
from segalloc.interfaces import Mode
from segalloc.names import ENTRY_SIZE, Entry, InstanceType, NameIndex, entry_bytes
from segalloc.readonly import read_only_twin, writable_type
from segalloc.segment import RawSegment, check_alignment

_P = ParamSpec("_P")
_R = TypeVar("_R")
#: bound on the ``.base`` chain from a numpy view to the array a segment handed out (numpy
#: collapses chains, so one or two hops in practice)
_MAX_BASE_HOPS = 8

__all__ = ["ANONYMOUS", "UNIQUE", "NamedObject", "NamedSegment", "Segment"]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: name sentinel: one instance per type, keyed by the type's qualified name
UNIQUE: Any = _Sentinel("UNIQUE")
#: name sentinel: an object with no name, reachable only through its handle
ANONYMOUS: Any = _Sentinel("ANONYMOUS")


@dataclass(frozen=True)
class NamedObject:
    """One entry of ``named_objects()`` / ``unique_objects()``."""

    name: str
    handle: int
    count: int
    type_id: str




class Segment(RawSegment):
    """A managed memory segment over any storage: the raw segment's allocation and views, and
    the named objects (the managed classes add the constructor)."""

    def get_handle_from_address(self, obj: Any) -> int:
        """The handle of a segment object (ctypes object or container proxy) or an address."""
        handle_attr = getattr(obj, "segment_handle", None)
        if isinstance(handle_attr, int):
            if getattr(obj, "segment", self) is not self:
                raise InvalidPointer(f"{obj!r} belongs to another segment")
            return handle_attr
        if isinstance(obj, int) and not isinstance(obj, bool):
            handle = obj - self._base_address()
        elif arrays.is_ndarray(obj):
            return self._array_handle(obj)
        elif objects.is_ctypes_object(obj):
            handle = ctypes.addressof(obj) - self._base_address()
        else:
            raise TypeError(f"cannot take the handle of a {type(obj).__name__}")
        if not 0 <= handle < len(self._buf):
            raise InvalidPointer("the object does not live in this segment")
        return handle

    def get_object_from_handle(self, cls: type, handle: int) -> Any:
        """The object of type ``cls`` at ``handle``: a constructed object (type-checked) or
        raw bytes of an allocation seen as ``cls``; ``numpy.ndarray`` for an array object."""
        check_handle(handle)
        if arrays.is_ndarray_type(cls):
            with self._reading:
                entry = self._entry_at(handle)
                assert entry is not None
                return self._array_at(handle, self._array_spec(entry))
        objects.check_type(cls)
        with self._reading:
            entry = self._entry_at(handle, required=False)
            if entry is not None:
                self._check_entry_type(entry, cls)
                return self._attach(cls, entry)
            if not objects.is_ctypes_type(cls):
                raise InvalidPointer(f"handle {handle} is not a constructed {cls.__qualname__}")
            if not 0 <= handle <= handle + objects.sizeof(cls) <= len(self._buf):
                raise InvalidPointer(f"handle {handle} is outside the segment")
            return self._ctypes_at(cls, handle)

    # -- named, unique and anonymous objects --------------------------------------------
    def _key(self, cls: type, name: object) -> tuple[InstanceType, bytes]:
        if name is UNIQUE:
            return InstanceType.UNIQUE, objects.type_name(cls).encode()
        if name is ANONYMOUS:
            return InstanceType.ANONYMOUS, b""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, UNIQUE or ANONYMOUS, not {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty (use ANONYMOUS for an unnamed object)")
        try:
            return InstanceType.NAMED, name.encode()
        except UnicodeEncodeError:
            raise ValueError(f"name {name!r} cannot be encoded as UTF-8") from None

    def construct(self, cls: type, name: Any, *args: Any, count: int | None = None) -> Any:
        """Build a ``cls`` (or an array of ``count``) in the segment under ``name``.

        ``args`` initialise every element (``cls(*args)``). ``NameExists`` when the name is
        taken; ``BadAlloc`` when there is no room (the segment is left unchanged).
        """
        objects.check_type(cls)
        kind, key = self._key(cls, name)
        if count is not None:
            check_size(count, "count")
            if not objects.is_ctypes_type(cls):
                raise TypeError(f"arrays of {cls.__qualname__} are not supported; use count=None")
        with self._writing:
            if kind is not InstanceType.ANONYMOUS and self._index.find(kind, key) is not None:
                raise NameExists(f"the segment already holds an object named {name!r}")
            return self._construct(cls, kind, key, args, count)

    def _indexed_key(self, cls: type, name: Any, call: str) -> tuple[InstanceType, bytes]:
        """The index key of a named or unique object (anonymous ones are not indexed)."""
        objects.check_type(cls)
        kind, key = self._key(cls, name)
        if kind is InstanceType.ANONYMOUS:
            raise ValueError(f"{call} needs a name or UNIQUE: anonymous objects are not indexed")
        return kind, key

    def _lookup(self, cls: type, kind: InstanceType, key: bytes) -> Entry | None:
        """The indexed entry, type-checked against ``cls`` (``TypeError`` on a mismatch)."""
        entry = self._index.find(kind, key)
        if entry is not None:
            self._check_entry_type(entry, cls)
        return entry

    def find_or_construct(self, cls: type, name: Any, *args: Any, count: int | None = None) -> Any:
        """The object named ``name`` if it exists (type-checked), else a new one, atomically."""
        kind, key = self._indexed_key(cls, name, "find_or_construct")
        with self._writing:
            entry = self._lookup(cls, kind, key)
            if entry is not None:
                return self._attach(cls, entry)
            return self._construct(cls, kind, key, args, count)

    def _construct(
        self, cls: type, kind: InstanceType, key: bytes, args: tuple[Any, ...], count: int | None
    ) -> Any:
        initial = bytes(cls(*args)) if args and objects.is_ctypes_type(cls) else None
        args = objects.prepared_args(cls, args)

        def build(handle: int) -> Any:
            if objects.is_ctypes_type(cls):
                return self._ctypes_at(cls, handle, count)
            return cls.segment_construct(self, handle, *args)  # type: ignore[attr-defined]

        return self._place(kind, key, build, is_array=count is not None,
                           elements=1 if count is None else count, elem_size=objects.sizeof(cls),
                           type_id=objects.type_id(cls), alignment=objects.alignment(cls),
                           initial=initial)

    def _place(
        self, kind: InstanceType, key: bytes, build: Callable[[int], Any], *, is_array: bool,
        elements: int, elem_size: int, type_id: str, alignment: int, initial: bytes | None = None,
    ) -> Any:
        """Allocate, write and index one object block, all or nothing; ``build(handle)`` makes
        what the caller gets (the block is freed again if it raises)."""
        encoded_id = type_id.encode()
        size = entry_bytes(elements, elem_size, key, encoded_id)
        alg = self._alg
        had_table = self._index.table_block() is not None
        if kind is not InstanceType.ANONYMOUS and not self._index.ensure_table():
            raise BadAlloc("no room for the named-object index")
        if size > len(self._buf) or alignment > len(self._buf):
            offset = None
        elif alignment > alg.ALIGNMENT:
            offset = alg.allocate_aligned(size, alignment)
        else:
            offset = alg.allocate(size)
        try:
            if offset is None:
                raise BadAlloc(f"no room for a {size}-byte object {key.decode(errors='replace')!r}")
            self._store(offset, NameIndex.entry_image(kind, is_array, elements, elem_size,
                                                      key, encoded_id, initial))
            obj = build(offset + ENTRY_SIZE)
        except BaseException:
            if offset is not None:
                alg.deallocate(offset)
            if not had_table:
                self._index.drop_table()
            raise
        if kind is not InstanceType.ANONYMOUS:
            self._index.link(offset, kind, key)
        return obj

    def _ctypes_at(self, cls: type, handle: int, count: int | None = None) -> Any:
        """The live ctypes object at ``handle``; in a read-only segment its read-only twin
        (``ReadOnlySegment`` on write), a copy only where the storage has no writable view
        of its bytes (an immutable buffer, whose bytes cannot change anyway)."""
        target: Any = cls if count is None else cls * count  # type: ignore[operator]
        if not self._buf.readonly:
            return self._exports.track(target.from_buffer(self._buf, handle), handle)
        twin: Any = read_only_twin(target)
        if self._objects_buf is None:
            return twin.from_buffer_copy(self._buf, handle)
        return twin.from_buffer(self._objects_buf, handle)

    def _attach(self, cls: type, entry: Entry) -> Any:
        if entry.elem_size != objects.sizeof(cls) or entry.count > len(self._buf):
            raise SegmentCorrupt(f"object {entry.display_name or entry.handle!r} claims "
                                 f"{entry.count} elements of {entry.elem_size} bytes, not of the "
                                 f"{objects.sizeof(cls)} its type has")
        if objects.is_ctypes_type(cls):
            return self._ctypes_at(cls, entry.handle, entry.count if entry.is_array else None)
        return cls.segment_attach(self, entry.handle)  # type: ignore[attr-defined]

    @staticmethod
    def _check_entry_type(entry: Entry, cls: type) -> None:
        if entry.type_id != objects.type_id(cls):
            what = f"object {entry.display_name or entry.handle!r}"
            raise TypeError(objects.type_mismatch(what, entry.type_id, cls))

    def find(self, cls: type, name: Any) -> tuple[Any, int]:
        """``(object, count)`` for the object named ``name``, or ``(None, 0)``.

        ``TypeError`` when the object exists with another type. Read first without the lock
        when attaching stores nothing (ctypes types, the containers: ``objects.
        attach_stores_nothing``), kept when no writer came meanwhile, as ``find_array``.
        """
        kind, key = self._indexed_key(cls, name, "find")
        if objects.attach_stores_nothing(cls):
            return self.read_optimistically(lambda: self._found(cls, kind, key))
        with self._reading:
            return self._found(cls, kind, key)

    def _found(self, cls: type, kind: InstanceType, key: bytes) -> tuple[Any, int]:
        """``find``'s answer: the index and the entry read, the object attached."""
        entry = self._lookup(cls, kind, key)
        if entry is None:
            return None, 0
        return self._attach(cls, entry), entry.count

    def destroy(self, cls: type, name: Any) -> bool:
        """Destroy the object named ``name``; False when there is none."""
        kind, key = self._indexed_key(cls, name, "destroy (use destroy_ptr for anonymous ones)")
        with self._writing:
            entry = self._lookup(cls, kind, key)
            if entry is None:
                return False
            self._destroy(cls, entry)
            return True

    def destroy_ptr(self, obj: Any) -> None:
        """Destroy the object ``obj`` (named, unique or anonymous) returned by this segment."""
        with self._writing:
            entry = self._entry_of(obj)
            if arrays.is_ndarray(obj):
                self._array_spec(entry)
                self._free_entry(entry)
                return
            cls = writable_type(type(obj))
            if entry.is_array:
                cls = cls._type_  # type: ignore[attr-defined]
            self._check_entry_type(entry, cls)
            self._destroy(cls, entry)

    def _destroy(self, cls: type, entry: Entry) -> None:
        if not objects.is_ctypes_type(cls):
            cls.segment_destroy(self, entry.handle)  # type: ignore[attr-defined]
        self._free_entry(entry)

    def _free_entry(self, entry: Entry) -> None:
        if entry.kind is not InstanceType.ANONYMOUS:
            self._index.unlink(entry)
        self._alg.deallocate(entry.offset)

    # -- numpy arrays (segalloc.arrays: the stored description and the views) ---------------
    def construct_array(
        self, name: Any, shape: Any, dtype: Any, *, align: int = arrays.DEFAULT_ALIGNMENT
    ) -> Any:
        """A new zeroed ``numpy.ndarray`` of ``shape`` and ``dtype`` (any fixed-size dtype,
        structured ones too) under ``name`` (a str, ``UNIQUE`` or ``ANONYMOUS``): a view of
        the segment's bytes, no copy, that another process finds with ``find_array``.
        Element 0 is aligned to ``align`` (and the dtype's alignment) from the segment start.
        ``NameExists`` / ``BadAlloc`` as ``construct``; ``ImportError`` without numpy."""
        spec, alignment = self._array_request(shape, dtype, align)
        kind, key = self._array_key(name)
        with self._writing:
            if kind is not InstanceType.ANONYMOUS and self._index.find(kind, key) is not None:
                raise NameExists(f"the segment already holds an object named {name!r}")
            return self._construct_array(kind, key, spec, alignment)

    def find_or_construct_array(
        self, name: Any, shape: Any, dtype: Any, *, align: int = arrays.DEFAULT_ALIGNMENT
    ) -> Any:
        """The array named ``name`` if it exists (``TypeError`` unless it has this shape and
        dtype), else a new one, atomically."""
        spec, alignment = self._array_request(shape, dtype, align)
        kind, key = self._array_key(name, "find_or_construct_array")
        with self._writing:
            entry = self._index.find(kind, key)
            if entry is None:
                return self._construct_array(kind, key, spec, alignment)
            found = self._array_spec(entry)
            if not found.same_array(spec):
                raise TypeError(f"array {name!r} is {found.describes()}, not {spec.describes()}")
            return self._array_at(entry.handle, found)

    def find_array(self, name: Any) -> Any:
        """The array named ``name`` (with its stored shape and dtype), or None. Read first
        without the lock, kept when the segment's version word says no writer came meanwhile
        (``SegmentCore.read_optimistically``); otherwise, or when that read failed (a writer's
        half-done index may look like damage), under the lock."""
        kind, key = self._array_key(name, "find_array")
        return self.read_optimistically(lambda: self._array_named(kind, key))

    def _array_named(self, kind: InstanceType, key: bytes) -> Any:
        """The array keyed (kind, key), or None: the index and the segment read, no store."""
        entry = self._index.find(kind, key)
        return None if entry is None else self._array_at(entry.handle, self._array_spec(entry))

    def destroy_array(self, name: Any) -> bool:
        """Destroy the array named ``name``; False when there is none (``destroy_ptr(array)``
        destroys any array, anonymous ones too)."""
        kind, key = self._array_key(name, "destroy_array (use destroy_ptr for anonymous ones)")
        with self._writing:
            entry = self._index.find(kind, key)
            if entry is None:
                return False
            self._array_spec(entry)
            self._free_entry(entry)
            return True

    @staticmethod
    def _array_request(shape: Any, dtype: Any, align: int) -> tuple[arrays.ArraySpec, int]:
        check_alignment(align)
        return arrays.ArraySpec.requested(shape, dtype, align)

    def _array_key(self, name: Any, indexed_call: str | None = None) -> tuple[InstanceType, bytes]:
        arrays.numpy()  # ImportError naming the extra before anything else
        if name is UNIQUE:
            return InstanceType.UNIQUE, arrays.UNIQUE_KEY
        if name is ANONYMOUS and indexed_call is not None:
            raise ValueError(f"{indexed_call} needs a name or UNIQUE: anonymous objects are "
                             "not indexed")
        return self._key(object, name)

    def _construct_array(
        self, kind: InstanceType, key: bytes, spec: arrays.ArraySpec, alignment: int
    ) -> Any:
        return self._place(kind, key, lambda handle: self._array_at(handle, spec),
                           is_array=False, elements=1, elem_size=spec.area,
                           type_id=spec.type_id(), alignment=alignment)

    @staticmethod
    def _array_spec(entry: Entry) -> arrays.ArraySpec:
        """The stored description of an array object (``TypeError`` for another object)."""
        if not entry.type_id.startswith(arrays.TYPE_PREFIX):
            raise TypeError(f"object {entry.display_name or entry.handle!r} is a "
                            f"{entry.type_id}, not a numpy array")
        return arrays.ArraySpec.stored(entry.type_id, entry.count * entry.elem_size)

    def _array_at(self, handle: int, spec: arrays.ArraySpec) -> Any:
        start = handle + spec.offset
        array, base = spec.view(self._buf[start : start + spec.nbytes])
        self._exports.track(base, handle)
        return array

    def _array_handle(self, array: Any) -> int:
        """The handle of the array object that ``array`` (or the array it views) belongs to."""
        view = array
        for _ in range(_MAX_BASE_HOPS):
            block = self._exports.block_of(view)
            if block is not None:
                return block
            view = getattr(view, "base", None)
        raise InvalidPointer("the array is not an array of this segment")

    def _entry_at(self, handle: int, *, required: bool = True) -> Entry | None:
        """The header of the constructed object whose data starts at ``handle``."""
        offset = handle - ENTRY_SIZE
        try:
            entry = self._index.read_entry(offset)
            self._alg.usable_size(offset)
        except InvalidPointer:
            if required:
                raise InvalidPointer(f"handle {handle} is not a constructed object") from None
            return None
        return entry

    def _entry_of(self, obj: Any) -> Entry:
        entry = self._entry_at(self.get_handle_from_address(obj))
        assert entry is not None
        return entry

    def get_instance_name(self, obj: Any) -> str | None:
        """The name ``obj`` was constructed under; the type's name if unique; None if anonymous."""
        with self._reading:
            return self._entry_of(obj).display_name

    def get_instance_type(self, obj: Any) -> InstanceType:
        """``InstanceType.NAMED``, ``UNIQUE`` or ``ANONYMOUS``."""
        with self._reading:
            return self._entry_of(obj).kind

    def get_instance_length(self, obj: Any) -> int:
        """The number of elements ``obj`` was constructed with (1 for a single object; a
        numpy array's ``size``)."""
        with self._reading:
            entry = self._entry_of(obj)
            if arrays.is_ndarray(obj):
                return math.prod(self._array_spec(entry).shape)
            return entry.count

    def _listing(self, kind: InstanceType) -> list[NamedObject]:
        return self.read_optimistically(lambda: [
            NamedObject(entry.name.decode(), entry.handle, entry.count, entry.type_id)
            for entry in self._index.entries()
            if entry.kind is kind
        ])

    def named_objects(self) -> list[NamedObject]:
        """Every named object (Boost's ``named_begin()..named_end()``)."""
        return self._listing(InstanceType.NAMED)

    def unique_objects(self) -> list[NamedObject]:
        """Every unique instance (Boost's ``unique_begin()..unique_end()``)."""
        return self._listing(InstanceType.UNIQUE)

    def num_named_objects(self) -> int:
        """How many named objects the segment holds."""
        return self.read_optimistically(self._index.counts)[0]

    def num_unique_objects(self) -> int:
        """How many unique instances the segment holds."""
        return self.read_optimistically(self._index.counts)[1]

    def reserve_named_objects(self, count: int) -> None:
        """Size the name index for ``count`` objects now, so later constructs do not rehash."""
        check_size(count, "count")
        buckets = 1 << max(count - 1, 0).bit_length()
        with self._writing:
            if not self._index.rehash(buckets):
                raise BadAlloc(f"no room to index {count} named objects")

    reserve_unique_objects = reserve_named_objects

class _ClassLevel(Generic[_P, _R]):
    """A classmethod that an open segment refuses, saying how to call it: a named segment is
    resized only while no process maps it, through its class (as in Boost), so
    ``shm.grow(4096)`` on an open instance is a mistake the message should correct."""

    def __init__(self, method: Callable[Concatenate[Any, _P], _R]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self._name = method.__name__

    @overload
    def __get__(self, segment: None, owner: type) -> Callable[_P, _R]: ...

    @overload
    def __get__(self, segment: object, owner: type) -> Callable[..., NoReturn]: ...

    def __get__(self, segment: object, owner: type) -> Callable[..., Any]:
        if segment is None:
            bound: Callable[_P, _R] = functools.partial(self._method, owner)
            return bound
        name = self._name

        def refuse(*args: Any, **kwargs: Any) -> NoReturn:
            shown = ", ".join(["name", *map(repr, args)])
            raise TypeError(f"{owner.__name__}.{name}() is class-level: a mapped segment cannot "
                            f"change size; close it and call {owner.__name__}.{name}({shown})")

        return refuse


class NamedSegment(Segment):
    """A segment whose backing object has a name (shared memory, a file): it is grown or shrunk
    only while no process maps it, through the class-level ``grow`` and ``shrink_to_fit``."""

    @classmethod
    def remove(cls, name: Any) -> bool:
        """Remove the backing object; False when there was none (Boost's ``remove``)."""
        return cls.storage_class.remove(name)

    @classmethod
    def _check_name(cls, name: object, call: str) -> None:
        if not isinstance(name, str) and not hasattr(name, "__fspath__"):
            raise TypeError(f"{cls.__name__}.{call} is class-level: close the segment and pass "
                            "its name")

    @_ClassLevel
    def grow(cls: type[NamedSegment], /, name: Any, extra: int, **options: Any) -> None:
        """Add ``extra`` bytes to the segment ``name`` (class-level, as in Boost), which no
        process may map (``BufferError``). ``options``: ``timeout`` for the lock,
        ``permissions`` / ``trust_foreign`` as for opening.

        Crash-safe: the object is extended first, then one transaction gives the algorithm the
        new tail and writes the header; a kill in between leaves a tail that the next opener
        takes in, a kill inside the transaction is rolled back (and the tail taken in)."""
        cls._check_name(name, "grow(name, extra)")
        check_size(extra, "extra")
        opening = {key: value for key, value in options.items() if key != "timeout"}
        with cls.storage_class.resizing(name, **options) as set_size:
            with cls(Mode.OPEN_ONLY, name, **opening) as segment:  # settles an earlier resize
                old = segment.get_size()
            set_size(old + extra)
            try:
                with cls(Mode.OPEN_ONLY, name, **opening) as grown:  # opening takes the tail in
                    grown.flush()
            except BaseException:
                set_size(old)  # the segment did not take the bytes in
                raise

    @_ClassLevel
    def shrink_to_fit(cls: type[NamedSegment], /, name: Any, **options: Any) -> int:
        """Give the free tail of the segment ``name``, which no process may map, back; returns
        its new size. ``options`` as for ``grow``.

        Crash-safe: one transaction shrinks the algorithm's region and the header, then the
        object is cut; a kill in between leaves a tail that the next opener takes in again."""
        cls._check_name(name, "shrink_to_fit(name)")
        opening = {key: value for key, value in options.items() if key != "timeout"}
        with cls.storage_class.resizing(name, **options) as set_size:
            with cls(Mode.OPEN_ONLY, name, **opening) as segment:
                new_size = segment._give_back_tail()
            set_size(new_size)
        return new_size
