"""What may live in a segment as a named, unique or anonymous object, and how it is built there.

Two kinds of types: ctypes types (scalars, ``Structure``, ``Union``, arrays), placed with
``T.from_buffer`` so the object *is* the segment's bytes; and segment-aware types (the
containers) that implement the ``SegmentType`` protocol below and own further blocks.
"""

from __future__ import annotations

import ctypes
import hashlib
import sys
import weakref
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from segalloc.interfaces import SegmentAccess

__all__ = ["SegmentType", "type_id", "type_mismatch", "type_name"]

_CTYPES_BASES: tuple[type, ...] = (
    ctypes._SimpleCData,
    ctypes.Structure,
    ctypes.Union,
    ctypes.Array,
)


@runtime_checkable
class SegmentType(Protocol):
    """A type that builds itself in a segment and may own more blocks there (containers).

    The object users hold is a light proxy; ``segment_handle`` is its offset in the segment.

    Optional (not part of the structural check, so older types still qualify):
    ``segment_prepare(*args)``, a classmethod that checks the construct arguments before the
    segment allocates anything (a value that cannot be stored raises with nothing changed) and
    returns the arguments to construct with; and ``segment_verify(segment, offset, claim)``, a
    classmethod that checks the object's links and lengths, bounded, and calls
    ``claim(block, size)`` for every block it owns; the deep check (``segalloc.deep_check``)
    runs it for types registered with ``register_segment_type``; and
    ``segment_attach_stores_nothing = True``, a class attribute beside a ``segment_attach`` that
    makes no store in the segment and calls nothing that may, so that ``find`` reads without the
    lock (``attach_stores_nothing``).
    """

    @classmethod
    def segment_sizeof(cls) -> int:
        """Bytes of the fixed part placed in the object's block."""

    @classmethod
    def segment_type_id(cls) -> str:
        """A stable identity string, stored in the object header and checked on ``find``."""

    @classmethod
    def segment_construct(cls, segment: SegmentAccess, offset: int, *args: Any) -> Any:
        """Initialise the zeroed bytes at ``offset`` (may allocate more) and return a proxy."""

    @classmethod
    def segment_attach(cls, segment: SegmentAccess, offset: int) -> Any:
        """A proxy for the object already built at ``offset``."""

    @classmethod
    def segment_destroy(cls, segment: SegmentAccess, offset: int) -> None:
        """Free every block the object owns (not its own block)."""


#: the members ``SegmentType``'s structural check asks a type for; ``check_type`` looks them
#: up itself, because ``isinstance(cls, SegmentType)`` (typing's protocol check) costs about
#: 10 µs a call on Python 3.11, and every ``find`` and ``construct`` asks
_SEGMENT_TYPE_MEMBERS = tuple(sorted(
    name for name, member in vars(SegmentType).items() if isinstance(member, classmethod)))

#: the common base of every ctypes instance (not exported by the ctypes module)
_CDATA: type = ctypes.c_int.__mro__[-2]


def is_ctypes_object(obj: object) -> bool:
    """True for an instance of a ctypes type."""
    return isinstance(obj, _CDATA)


def is_ctypes_type(cls: object) -> bool:
    """True for the ctypes types a segment can hold directly."""
    return isinstance(cls, type) and issubclass(cls, _CTYPES_BASES)


def is_segment_type(cls: object) -> bool:
    """True for a class that has every ``SegmentType`` member: what ``isinstance(cls,
    SegmentType)`` answers, as one attribute lookup a member."""
    return isinstance(cls, type) and all(
        getattr(cls, name, None) is not None for name in _SEGMENT_TYPE_MEMBERS)


def attach_stores_nothing(cls: type) -> bool:
    """True when ``find`` may attach ``cls`` without the lock, its read checked against the
    segment's version word (``SegmentCore.read_optimistically``): a ctypes type (a view of the
    bytes), or a class that says so beside the ``segment_attach`` it defines. The flag counts
    only in the class that defines the method: a subclass that overrides ``segment_attach``
    without saying it again is attached under the lock, since its code may store."""
    if is_ctypes_type(cls):
        return True
    for klass in cls.__mro__:
        members = vars(klass)
        if "segment_attach" in members:
            return members.get("segment_attach_stores_nothing") is True
    return False


def check_type(cls: object) -> None:
    """``TypeError`` unless ``cls`` can live in a segment."""
    if is_ctypes_type(cls) or is_segment_type(cls):
        return
    raise TypeError(
        f"{cls!r} cannot live in a segment: use a ctypes type (c_int, Structure, arrays) "
        "or a segment container type"
    )


# ------------------------------------------------------------------------------------------
# Type identity: what an object header stores to recognise its type, never a module path
#
#   scalars      their storage: c_int8..c_int64, c_uint8..c_uint64, c_float, c_double, c_bool,
#                c_char, c_wchar32, c_longdouble128, c_void_p, ...; "_be"/"_le" when the byte
#                order is not the machine's (c_int is c_int32 where it is 4 bytes, c_long and
#                c_longlong are c_int64 where they are 8: the same storage, the same id)
#   arrays       the element's id and the length: c_int32*4, Point#1f2e3d4c*3
#   Structure,   NAME#DIGEST{field:TYPE@OFFSET,...}/SIZE  (" union{...}" for a Union, " be"/" le"
#   Union        before the brace for a non-native byte order, "@OFFSET.BIT:BITS" for a
#                bitfield). NAME is the qualified name (the same under __main__ and
#                __mp_main__) or the class's own _segalloc_type_id_; DIGEST is 8 hex digits of
#                BLAKE2b over the layout (kind, order, size, alignment and the fields), so a
#                reordered or resized Structure is another type. Field types are named short
#                (NAME#DIGEST for a nested Structure: its digest covers its own fields, so the
#                layout is checked all the way down); a fields text longer than
#                _MAX_FIELDS_TEXT is cut with "..." (the digest still covers every field)
#   pointers     (fields only) their ctypes name and size: LP_Node/8, never the target's id
#                (a Structure may point to itself)
#   containers   their own fixed ids, from segment_type_id(): SegmentList[c_int32], ...
# ------------------------------------------------------------------------------------------

#: tunable: longest fields text stored in an object header (the digest covers the rest)
_MAX_FIELDS_TEXT = 160
#: characters a fixed ``_segalloc_type_id_`` may not hold: they delimit the parts of an id
_ID_DELIMITERS = frozenset("#{}@,*")

_SIGNED_CODES = frozenset("bhilq")
_UNSIGNED_CODES = frozenset("BHILQ")
#: scalar codes whose storage has one size everywhere, named as ctypes names them
_FIXED_SCALARS = {"f": "c_float", "d": "c_double", "?": "c_bool", "c": "c_char"}
#: scalar codes whose size varies by platform: the name carries the bits
_SIZED_SCALARS = {"u": "c_wchar", "g": "c_longdouble", "z": "c_char_p", "Z": "c_wchar_p",
                  "P": "c_void_p", "O": "py_object"}
_NATIVE_ORDER = "__ctype_le__" if sys.byteorder == "little" else "__ctype_be__"
_SWAPPED_SUFFIX = "_be" if sys.byteorder == "little" else "_le"
_SWAPPED_RECORDS: tuple[type, ...] = tuple(
    base for base in (
        getattr(ctypes, "BigEndianStructure" if sys.byteorder == "little" else "LittleEndianStructure"),
        getattr(ctypes, "BigEndianUnion" if sys.byteorder == "little" else "LittleEndianUnion", None),
    ) if base is not None
)

_SHORT_IDS: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
_FULL_IDS: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def _scalar_id(cls: type) -> str:
    code = str(cls._type_)  # type: ignore[attr-defined]
    bits = 8 * ctypes.sizeof(cls)
    if code in _SIGNED_CODES:
        name = f"c_int{bits}"
    elif code in _UNSIGNED_CODES:
        name = f"c_uint{bits}"
    elif code in _FIXED_SCALARS:
        name = _FIXED_SCALARS[code]
    else:
        name = f"{_SIZED_SCALARS.get(code, 'c_' + code)}{bits}"
    if bits > 8 and getattr(cls, _NATIVE_ORDER, cls) is not cls:
        name += _SWAPPED_SUFFIX
    return name


def _record_name(cls: type) -> str:
    """The name part of a Structure's or Union's id: its own fixed id, else its qualified name."""
    fixed = vars(cls).get("_segalloc_type_id_")
    if fixed is None:
        return cls.__qualname__
    if not isinstance(fixed, str) or not fixed or _ID_DELIMITERS & set(fixed):
        raise TypeError(f"{cls.__qualname__}._segalloc_type_id_ must be a non-empty str without "
                        f"any of {''.join(sorted(_ID_DELIMITERS))}, not {fixed!r}")
    return fixed


def _record_fields(cls: type) -> list[tuple[Any, ...]]:
    """Every field of a Structure or Union, its bases' first (as ctypes lays them out)."""
    fields: list[tuple[Any, ...]] = []
    for klass in reversed(cls.__mro__):
        fields.extend(vars(klass).get("_fields_", ()))
    return fields


def _field_text(cls: type, field: tuple[Any, ...]) -> str:
    name, ftype = field[0], field[1]
    described = getattr(cls, name)
    text = f"{name}:{_short_id(ftype)}@{described.offset}"
    if len(field) > 2:  # a bitfield: its bit offset in the storage unit and its width
        bit_offset = getattr(described, "bit_offset", described.size & 0xFFFF)
        text += f".{bit_offset}:{field[2]}"
    return text


def _record_ids(cls: type) -> tuple[str, str]:
    """``(short id, full id)`` of a Structure or Union."""
    words = ("union" if issubclass(cls, ctypes.Union) else "",
             _SWAPPED_SUFFIX[1:] if issubclass(cls, _SWAPPED_RECORDS) else "")
    kind = "".join(" " + word for word in words if word)
    fields = ",".join(_field_text(cls, field) for field in _record_fields(cls))
    size = ctypes.sizeof(cls)
    layout = f"{kind}{{{fields}}}/{size}%{ctypes.alignment(cls)}"
    short = f"{_record_name(cls)}#{hashlib.blake2b(layout.encode(), digest_size=4).hexdigest()}"
    if len(fields) > _MAX_FIELDS_TEXT:
        fields = fields[:_MAX_FIELDS_TEXT] + "..."
    return short, f"{short}{kind}{{{fields}}}/{size}"


def _array_parts(cls: type) -> tuple[type, int]:
    """An array type's element type and length."""
    array: Any = cls
    return array._type_, array._length_


def _ids(cls: type) -> tuple[str, str]:
    """``(short id, full id)``: the short one names the type inside other ids."""
    if cls in _SHORT_IDS:
        return _SHORT_IDS[cls], _FULL_IDS[cls]
    if issubclass(cls, ctypes._SimpleCData):
        short = full = _scalar_id(cls)
    elif issubclass(cls, ctypes.Array):
        element, length = _array_parts(cls)
        short, full = f"{_short_id(element)}*{length}", f"{type_id(element)}*{length}"
    elif issubclass(cls, (ctypes.Structure, ctypes.Union)):
        short, full = _record_ids(cls)
    elif issubclass(cls, _CDATA):  # a pointer field: an address, named without its target
        pointer: Any = cls
        short = full = f"{cls.__qualname__}/{ctypes.sizeof(pointer)}"
    else:
        short = full = str(cls.segment_type_id())  # type: ignore[attr-defined]
    if issubclass(cls, _CTYPES_BASES):  # a container's id is its own; ctypes ids are derived
        _SHORT_IDS[cls], _FULL_IDS[cls] = short, full
    return short, full


def _short_id(cls: type) -> str:
    return _ids(cls)[0]


def type_id(cls: type) -> str:
    """The identity stored with an object and compared on ``find``; it shows the layout of a
    Structure or Union, so a mismatch can say what the segment holds."""
    return _ids(cls)[1]


def type_name(cls: type) -> str:
    """The key of a unique instance: the name part of the type's identity (Boost uses
    ``typeid(T).name()``). A Structure keeps its key when its layout changes, so ``find``
    of the changed type raises ``TypeError`` instead of missing the old instance."""
    if issubclass(cls, (ctypes.Structure, ctypes.Union)):
        return _record_name(cls)
    if issubclass(cls, ctypes.Array):
        element, length = _array_parts(cls)
        return f"{type_name(element)}*{length}"
    return _short_id(cls)


def type_mismatch(what: str, stored: str, cls: type) -> str:
    """The ``TypeError`` text of an object whose stored identity is not ``cls``'s: both
    layouts, one a line (a damaged stored identity shown quoted)."""
    shown = stored if stored.isprintable() else repr(stored)
    return f"{what} holds another type than {cls.__qualname__}:\n  stored: {shown}\n  " \
           f"wanted: {type_id(cls)}"


def prepared_args(cls: type, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The construct arguments of ``cls``, checked before the segment allocates its block."""
    prepare = None if is_ctypes_type(cls) else getattr(cls, "segment_prepare", None)
    return args if prepare is None else tuple(prepare(*args))


def sizeof(cls: type) -> int:
    """Bytes one element occupies in the object's block."""
    if is_ctypes_type(cls):
        return ctypes.sizeof(cls)
    return int(cls.segment_sizeof())  # type: ignore[attr-defined]


def alignment(cls: type) -> int:
    """The alignment one element needs."""
    if is_ctypes_type(cls):
        return ctypes.alignment(cls)
    return 16
