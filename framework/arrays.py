"""numpy arrays as segment objects (``seg.construct_array`` / ``find_array``): the stored
description and the views laid over the bytes. numpy is an optional extra, imported lazily.

An array is one object (``count`` 1) whose data area holds ``offset`` padding bytes, then the
array's elements in C order; the padding puts element 0 at a multiple of the requested
alignment from the segment start (the block is allocated aligned, and ``offset`` skips the
object header). Its type identity, stored in the object header with every object's, is::

    numpy.ndarray/{"descr": <dtype as in the .npy format>, "offset": 16, "shape": [3, 4]}

so another process (or a byte copy) rebuilds the same dtype and shape. Everything read back
is validated first: a damaged identity raises ``SegmentCorrupt``, never an object dtype laid
over raw bytes or a shape larger than the block.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import sys
from dataclasses import dataclass
from typing import Any

from segalloc.errors import ReadOnlySegment, SegmentCorrupt
from segalloc.names import ENTRY_SIZE

__all__ = ["DEFAULT_ALIGNMENT", "TYPE_PREFIX", "UNIQUE_KEY", "ArraySpec", "is_ndarray",
           "is_ndarray_type", "numpy"]

#: tunable: element 0's alignment unless ``align=`` says otherwise (a cache line, for SIMD)
DEFAULT_ALIGNMENT = 64
#: marks an array's stored type identity
TYPE_PREFIX = "numpy.ndarray/"
#: the key of the segment's unique array (``UNIQUE``): one per segment
UNIQUE_KEY = b"numpy.ndarray"
#: fixed: numpy's own limit on dimensions (NPY_MAXDIMS of numpy 1.x)
MAX_DIMS = 32
#: fixed: bound on the nesting of a stored structured dtype (a damaged one cannot recurse deep)
_MAX_DESCR_DEPTH = 32
#: tunable: how many distinct identities the encoding and decoding memos keep (each is a pure
#: function of its arguments: no segment state lives in them)
_MEMO_SIZE = 256
_INSTALL_HINT = "pip install 'segalloc[numpy]'"


def numpy() -> Any:
    """The numpy module, or ``ImportError`` naming the extra that installs it."""
    np = sys.modules.get("numpy")  # imported already: the common case, without the import
    if np is not None:
        return np
    try:
        import numpy as np
    except ImportError:
        raise ImportError(f"numpy arrays in a segment need numpy: {_INSTALL_HINT}") from None
    return np


def is_ndarray(obj: object) -> bool:
    """True for a numpy array (without importing numpy when nothing imported it)."""
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray)


def is_ndarray_type(cls: object) -> bool:
    """True for ``numpy.ndarray`` itself."""
    np = sys.modules.get("numpy")
    return np is not None and cls is np.ndarray


def _shape_of(shape: object) -> tuple[int, ...]:
    items = shape if isinstance(shape, (tuple, list)) else (shape,)
    dims = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError("shape entries must be ints, not bool")
        try:
            dims.append(operator.index(item))
        except TypeError:
            raise TypeError(f"shape entries must be ints, not {type(item).__name__}") from None
    if not dims or len(dims) > MAX_DIMS:
        raise ValueError(f"shape must have 1 to {MAX_DIMS} dimensions, got {len(dims)}")
    if min(dims) <= 0:
        raise ValueError(f"shape {tuple(dims)} has a dimension <= 0: a segment holds no "
                         "zero-size arrays")
    return tuple(dims)


def _descr_from_json(value: object, depth: int = 0) -> Any:
    """The .npy-format descr that ``json`` turned into lists, back with its tuples."""
    if depth > _MAX_DESCR_DEPTH:
        raise ValueError("dtype nests too deep")
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise ValueError(f"bad dtype description {value!r:.80}")
    fields = []
    for field in value:
        if not isinstance(field, list) or len(field) not in (2, 3):
            raise ValueError(f"bad dtype field {field!r:.80}")
        name = tuple(field[0]) if isinstance(field[0], list) else field[0]
        parts = [name, _descr_from_json(field[1], depth + 1)]
        if len(field) == 3:
            if not isinstance(field[2], list) or not all(isinstance(n, int) for n in field[2]):
                raise ValueError(f"bad subarray shape {field[2]!r:.80}")
            parts.append(tuple(field[2]))
        fields.append(tuple(parts))
    return fields


def _descr(kind: Any) -> Any:
    """The .npy-format descr of ``kind``: its ``str`` for numpy's own scalar dtypes (what
    ``dtype_to_descr`` returns for them), the general conversion for the rest."""
    return kind.str if kind.isbuiltin == 1 else numpy().lib.format.dtype_to_descr(kind)


def _encode(descr: Any, offset: int, shape: tuple[int, ...]) -> str:
    """The stored identity of an array (the module docstring shows it)."""
    return TYPE_PREFIX + json.dumps({"descr": descr, "offset": offset, "shape": list(shape)},
                                    sort_keys=True, separators=(",", ":"))


_encode_simple = functools.lru_cache(maxsize=_MEMO_SIZE)(_encode)


@functools.lru_cache(maxsize=_MEMO_SIZE)
def _decode(type_id: str) -> ArraySpec:
    """The spec a stored identity describes; ``SegmentCorrupt`` when it is damaged or not one
    ``requested`` makes (a pure function of the string: a failure is not kept, so it raises
    every time)."""
    np = numpy()
    try:
        fields = json.loads(type_id[len(TYPE_PREFIX):])
        descr, shape, offset = fields["descr"], fields["shape"], fields["offset"]
        kind = np.lib.format.descr_to_dtype(_descr_from_json(descr))
        if not isinstance(shape, list) or not isinstance(offset, int) or offset < 0:
            raise ValueError("bad shape or offset")
        dims = _shape_of(shape)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        raise SegmentCorrupt(f"array description {type_id!r:.120} is damaged: {exc}") from None
    if kind.subdtype is not None or kind.hasobject or kind.itemsize == 0:
        raise SegmentCorrupt(f"array description {type_id!r:.120} is not a segment array's")
    return ArraySpec(kind, dims, offset)


def _request(shape: object, dtype: object, alignment: int) -> tuple[ArraySpec, int]:
    """``ArraySpec.requested``: the spec of a new array and its block alignment."""
    np = numpy()
    dims = _shape_of(shape)
    try:
        kind = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{dtype!r} is not a numpy dtype: {exc}") from None
    if kind.subdtype is not None:  # (float, 3) means three more floats per element
        kind, inner = kind.subdtype
        dims = _shape_of(dims + inner)
    if kind.hasobject:
        raise TypeError(f"dtype {kind} holds Python objects, which cannot live in a segment")
    if kind.itemsize == 0:
        raise TypeError(f"dtype {kind} has no fixed size; give one (e.g. 'S16', 'U8')")
    if math.prod(dims) * kind.itemsize >= 2**62:
        raise ValueError(f"an array of shape {dims} of {kind} is absurdly large")
    block_alignment = max(alignment, kind.alignment)
    return ArraySpec(kind, dims, -ENTRY_SIZE % block_alignment), block_alignment


_request_simple = functools.lru_cache(maxsize=_MEMO_SIZE)(_request)


@dataclass(frozen=True)
class ArraySpec:
    """What an array object stores: dtype, shape, and where element 0 sits in its data area."""

    dtype: Any
    shape: tuple[int, ...]
    offset: int

    @classmethod
    def requested(cls, shape: object, dtype: object, alignment: int) -> tuple[ArraySpec, int]:
        """The spec of a new array and the block alignment it needs (``TypeError`` /
        ``ValueError`` for a dtype or shape a segment cannot hold)."""
        exact = type(shape) is int or type(shape) is tuple and all(type(n) is int for n in shape)
        np = numpy()
        if exact and (type(dtype) is str or isinstance(dtype, type) and issubclass(
                dtype, np.generic) or isinstance(dtype, np.dtype) and dtype.isbuiltin == 1):
            return _request_simple(shape, dtype, alignment)  # equal keys: equal requests
        return _request(shape, dtype, alignment)

    @classmethod
    def stored(cls, type_id: str, area: int) -> ArraySpec:
        """The spec read back from an object's identity; ``SegmentCorrupt`` when it is damaged
        or claims more than the object's ``area`` data bytes."""
        spec = _decode(type_id)
        if spec.area > area:
            raise SegmentCorrupt(f"array description {type_id!r:.120} does not fit its "
                                 f"{area}-byte object")
        return spec

    @functools.cached_property
    def nbytes(self) -> int:
        """Bytes of the elements (kept: the memos hand the same spec out again)."""
        return math.prod(self.shape) * int(self.dtype.itemsize)

    @property
    def area(self) -> int:
        """Bytes of the object's data area: the padding, then the elements."""
        return self.offset + self.nbytes

    def describes(self) -> str:
        """``dtype shape`` as users read it."""
        return f"{self.dtype} {self.shape}"

    def type_id(self) -> str:
        """The identity stored in the object header (the module docstring shows it)."""
        descr = _descr(self.dtype)
        encode = _encode_simple if isinstance(descr, str) else _encode
        return encode(descr, self.offset, self.shape)

    def same_array(self, other: ArraySpec) -> bool:
        """Same dtype (as stored) and shape, wherever element 0 sits."""
        mine, theirs = (_descr(s.dtype) for s in (self, other))
        return bool(mine == theirs and self.shape == other.shape)

    def view(self, data: memoryview) -> tuple[Any, Any]:
        """``(array, base)`` over ``data`` (the elements' bytes): ``base`` is the flat array
        every view derived from ``array`` keeps alive (what the segment tracks). A read-only
        ``data`` gives a read-only array whose writes raise ``ReadOnlySegment``."""
        np = numpy()
        base = np.frombuffer(data, dtype=self.dtype)
        array = base if len(self.shape) == 1 else base.reshape(self.shape)
        if data.readonly:
            array = array.view(_read_only_array_class())
        return array, base


@functools.cache
def _read_only_array_class() -> type:
    """An ndarray subclass that names ``ReadOnlySegment`` for the usual writes (item assignment,
    in-place operators and ufuncs with ``out=``); numpy's own ``ValueError`` still refuses
    the rest (``fill``, ``np.copyto``), as the array is not writeable."""
    np = numpy()

    def refuse() -> ReadOnlySegment:
        return ReadOnlySegment("this array was found in a segment opened read-only: it "
                               "cannot be changed")

    class ReadOnlySegmentArray(np.ndarray):  # type: ignore[misc,name-defined]
        """An array over a read-only segment's live bytes."""

        def __setitem__(self, index: Any, value: Any) -> None:
            if not self.flags.writeable:
                raise refuse()
            super().__setitem__(index, value)

        def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
            outs = kwargs.get("out") or ()
            if any(isinstance(out, np.ndarray) and not out.flags.writeable for out in outs):
                raise refuse()
            plain = [item.view(np.ndarray) if isinstance(item, np.ndarray) else item
                     for item in inputs]
            return getattr(ufunc, method)(*plain, **kwargs)

    ReadOnlySegmentArray.__module__ = __name__
    return ReadOnlySegmentArray
