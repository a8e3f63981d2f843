"""The grow rule (``framework/exports.py``): memory never moves under a view handed out.

A heap ``grow`` / ``shrink_to_fit`` refuses with ``BufferError`` while ctypes objects, numpy
arrays or buffer views taken from the segment are alive (they hold an address, so they could
only keep using the old copy); container proxies hold a handle, do not block it, and raise
``InvalidPointer`` afterwards. A vector's buffer views block what would move or free that
buffer, as ``bytearray``'s exports do.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from segalloc import InvalidPointer, ManagedHeapMemory, SegmentList, SegmentVector

SIZE = 65536


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int64), ("inner", ctypes.c_int32 * 2)]


def moves(seg: ManagedHeapMemory) -> list[Callable[[], object]]:
    return [lambda: seg.grow(4096), seg.shrink_to_fit]


def assert_refused_then_allowed(seg: ManagedHeapMemory, holder: list[Any], count: int = 1) -> None:
    """Every move refuses naming ``count`` views while ``holder`` keeps them; after they go,
    the moves work."""
    size = seg.get_size()
    for move in moves(seg):
        with pytest.raises(BufferError, match=f"{count} object"):
            move()
        assert seg.get_size() == size and seg.check_sanity()
    holder.clear()
    seg.grow(4096)
    assert seg.get_size() == size + 4096
    seg.shrink_to_fit()


@pytest.mark.parametrize("take", [
    lambda seg: seg.construct(Point, "p"),
    lambda seg: seg.construct(Point, "p").inner,  # a nested part keeps its object alive
    lambda seg: memoryview(seg.construct(Point, "p")),
    lambda seg: seg.construct(ctypes.c_int, "n", count=3),
    lambda seg: seg.get_object_from_handle(ctypes.c_int, seg.allocate(8)),
    lambda seg: seg.construct_array("a", (4, 4), np.float32),
    lambda seg: seg.construct_array("a", (4, 4), np.float32)[1:, 2],  # a view of an array
    lambda seg: seg.construct(SegmentVector[ctypes.c_int], "v", [1, 2]).memoryview(),
    lambda seg: np.asarray(seg.construct(SegmentVector[ctypes.c_double], "v", [1.0])),
], ids=["struct", "nested", "memoryview", "ctypes-array", "raw-handle", "ndarray",
        "ndarray-view", "vector-memoryview", "vector-asarray"])
def test_a_live_view_stops_the_memory_moving(take: Callable[[ManagedHeapMemory], Any]) -> None:
    seg = ManagedHeapMemory(SIZE)
    assert_refused_then_allowed(seg, [take(seg)])


def test_the_refusal_counts_every_live_view() -> None:
    seg = ManagedHeapMemory(SIZE)
    held = [seg.construct(Point, "p"), seg.find(Point, "p")[0], seg.construct_array("a", 3, "u1")]
    assert_refused_then_allowed(seg, held, count=3)


def test_objects_fetched_again_after_the_move_see_the_same_bytes() -> None:
    seg = ManagedHeapMemory(SIZE)
    seg.construct(Point, "p").x = 11
    seg.construct_array("a", 3, np.int16)[:] = [1, 2, 3]
    seg.grow(SIZE)
    assert seg.find(Point, "p")[0].x == 11 and seg.find_array("a").tolist() == [1, 2, 3]


def test_container_proxies_do_not_stop_a_move_and_refuse_afterwards() -> None:
    seg = ManagedHeapMemory(SIZE)
    numbers = seg.construct(SegmentList[ctypes.c_int], "l", [1, 2])
    handle = seg.get_handle_from_address(numbers)
    seg.grow(4096)
    with pytest.raises(InvalidPointer, match="get_object_from_handle"):
        numbers.append(3)
    assert seg.get_object_from_handle(SegmentList[ctypes.c_int], handle) == [1, 2]


def test_a_vector_buffer_view_is_live_and_pins_the_buffer() -> None:
    seg = ManagedHeapMemory(SIZE)
    vec = seg.construct(SegmentVector[ctypes.c_int64], "v", [1, 2, 3])
    vec.reserve(4)
    view, array = vec.memoryview(), np.asarray(vec)
    assert view.itemsize == 8 and view.tolist() == [1, 2, 3]
    vec[0] = 10
    array[1] = 20
    assert view.tolist() == [10, 20, 3] and vec == [10, 20, 3] and array.tolist() == [10, 20, 3]
    vec.append(4)  # within capacity: the buffer stays where it is
    while seg.allocate(16, nothrow=True) is not None:  # no room to expand in place: it must move
        pass
    for change in (lambda: vec.extend(range(100)), vec.clear, lambda: seg.destroy_ptr(vec)):
        with pytest.raises(BufferError, match="2 object"):
            change()
    assert vec == [10, 20, 3, 4] and seg.check_sanity()
    del view, array
    vec.clear()
    assert vec == [] and seg.check_sanity()


def test_a_vector_view_copies_only_when_asked() -> None:
    seg = ManagedHeapMemory(SIZE)
    vec = seg.construct(SegmentVector[ctypes.c_int32], "v", [1, 2])
    copied = np.array(vec, dtype=np.float64)
    assert copied.dtype == np.float64 and copied.tolist() == [1.0, 2.0]
    copied[0] = 5
    assert vec == [1, 2]
    assert np.shares_memory(np.asarray(vec, dtype=np.int32), np.asarray(vec))
    assert not np.shares_memory(np.array(vec, copy=True), np.asarray(vec))
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":  # numpy 1 has no copy=False contract
        with pytest.raises(ValueError, match="needs a copy"):
            np.asarray(vec, dtype=np.float32, copy=False)
    assert np.asarray(seg.construct(SegmentVector[ctypes.c_int32], "empty")).shape == (0,)


def test_memoryview_of_a_vector_follows_the_python_version() -> None:
    seg = ManagedHeapMemory(SIZE)
    vec = seg.construct(SegmentVector[ctypes.c_double], "v", [0.5])
    if sys.version_info >= (3, 12):  # PEP 688: a Python class can export a buffer
        assert memoryview(vec).tolist() == [0.5]
    else:
        with pytest.raises(TypeError):
            memoryview(vec)
    assert vec.memoryview().tolist() == [0.5]


def test_only_scalar_vectors_have_a_buffer() -> None:
    seg = ManagedHeapMemory(SIZE)
    with pytest.raises(TypeError, match="scalar"):
        seg.construct(SegmentVector[Point], "v").memoryview()
