"""numpy arrays in a segment (``framework/arrays.py`` and ``Segment.*_array``): another process
finds them zero-copy with the same shape and dtype, any fixed-size dtype round-trips, element 0
is aligned, destroy gives the memory back, bad requests and damaged descriptions are refused."""

from __future__ import annotations

import ctypes
import multiprocessing
import sys
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst

from segalloc import (
    ANONYMOUS,
    UNIQUE,
    BadAlloc,
    InvalidPointer,
    ManagedExternalBuffer,
    ManagedHeapMemory,
    ManagedMappedFile,
    ManagedSharedMemory,
    Mode,
    NameExists,
    SegmentCorrupt,
)
from segalloc.names import ENTRY_SIZE

SIZE = 1 << 18
SPAWN = multiprocessing.get_context("spawn")
#: a structured dtype with padding (align=True), a subarray field and bytes
PARTICLE = np.dtype([("id", "<i8"), ("pos", "<f4", (3,)), ("tag", "S5"), ("alive", "?")],
                    align=True)
DTYPES = [
    np.dtype("<f8"), np.dtype(">i2"), np.dtype("u1"), np.dtype("?"), np.dtype("<c16"),
    np.dtype("<M8[ns]"), np.dtype("<U7"), np.dtype("S3"), PARTICLE,
    np.dtype([("a", "<u2"), ("nested", [("x", "<f8"), ("y", "<i1", (2, 2))])]),
]


@pytest.fixture(params=["shared_memory", "mapped_file"])
def named(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[type, str]]:
    """``(managed class, fresh name)`` of a named backend; removed afterwards."""
    if request.param == "shared_memory":
        name = f"segalloc-test-{uuid.uuid4().hex}"
        try:
            yield ManagedSharedMemory, name
        finally:
            ManagedSharedMemory.remove(name)
    else:
        yield ManagedMappedFile, str(tmp_path / "segment")


@pytest.fixture
def heap() -> Iterator[ManagedHeapMemory]:
    with ManagedHeapMemory(SIZE) as seg:
        seg.reserve_named_objects(16)  # the index table exists, so free memory comes back whole
        yield seg


# -- another process ------------------------------------------------------------------------
def find_write_and_watch(cls: type, name: str, results: Any, wrote: Event, parent_wrote: Event) -> None:
    """Spawned child: find the array, report it, write one element, report the parent's write."""
    with cls(Mode.OPEN_ONLY, name) as seg:
        particles = seg.find_array("particles")
        results.put((particles.shape, particles.dtype, int(particles[1]["id"]),
                     particles[1]["tag"].tobytes()))
        particles[2]["pos"] = (1.5, 2.5, 3.5)
        wrote.set()
        parent_wrote.wait(30)
        results.put(int(particles[3]["id"]))
        del particles


def test_another_process_finds_the_array_and_sees_writes_both_ways(named: tuple[type, str]) -> None:
    cls, name = named
    with cls(Mode.CREATE_ONLY, name, SIZE) as seg:
        particles = seg.construct_array("particles", (4,), PARTICLE)
        particles[1] = (7, (0.0, 0.0, 0.0), b"seven", True)
        results, wrote, parent_wrote = SPAWN.Queue(), SPAWN.Event(), SPAWN.Event()
        child = SPAWN.Process(target=find_write_and_watch,
                              args=(cls, name, results, wrote, parent_wrote))
        child.start()
        try:
            shape, dtype, seen_id, seen_tag = results.get(timeout=60)
            assert (shape, dtype, seen_id, seen_tag) == ((4,), PARTICLE, 7, b"seven")
            assert wrote.wait(30)
            assert particles[2]["pos"].tolist() == [1.5, 2.5, 3.5]  # the child's write, live
            particles[3]["id"] = 1234
            parent_wrote.set()
            assert results.get(timeout=30) == 1234
        finally:
            child.join(60)
        assert child.exitcode == 0
        del particles


# -- dtypes, shapes and a byte copy ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_fixed_size_dtype_round_trips_through_a_byte_copy(dtype: np.dtype[Any]) -> None:
    buf = bytearray(SIZE)
    with ManagedExternalBuffer(Mode.CREATE_ONLY, buf) as seg:
        array = seg.construct_array("a", (3, 5), dtype)
        assert not array.any() if dtype.names is None else not array.tobytes().strip(b"\0")
        array.view(np.uint8)[...] = np.arange(array.nbytes, dtype=np.uint8).reshape(3, -1)
        image = bytes(array.tobytes())
        del array
    copy = bytearray(buf)
    with ManagedExternalBuffer(Mode.OPEN_ONLY, copy) as other:
        found = other.find_array("a")
        assert found.dtype == dtype and found.dtype.itemsize == dtype.itemsize
        assert found.shape == (3, 5) and found.tobytes() == image
        del found


@given(dtype=npst.nested_dtypes(max_leaves=6, max_itemsize=64).filter(lambda kind: kind.itemsize > 0),
       shape=npst.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
       data=st.data())
def test_any_dtype_and_shape_round_trip(dtype: np.dtype[Any], shape: tuple[int, ...],
                                        data: st.DataObject) -> None:
    buf = bytearray(SIZE)
    with ManagedExternalBuffer(Mode.CREATE_ONLY, buf) as seg:
        array = seg.construct_array("a", shape, dtype)
        wanted = data.draw(st.randoms(use_true_random=False)).randbytes(array.nbytes)
        array.reshape(-1).view(np.uint8)[:] = np.frombuffer(wanted, dtype=np.uint8)
        expected_shape, expected_dtype = array.shape, array.dtype
    with ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(buf)) as other:
        found = other.find_array("a")
        assert found.shape == expected_shape and found.dtype == expected_dtype
        assert found.tobytes() == wanted


def test_a_subarray_dtype_folds_into_the_shape(heap: ManagedHeapMemory) -> None:
    array = heap.construct_array("v", 4, ("<f4", (3,)))
    assert array.shape == (4, 3) and array.dtype == np.float32
    assert heap.find_array("v").shape == (4, 3)


def test_the_array_is_a_view_of_the_segment_not_a_copy(heap: ManagedHeapMemory) -> None:
    array = heap.construct_array("m", (2, 3), np.int32)
    array[1, 2] = 5
    again = heap.find_array("m")
    assert np.shares_memory(array, again) and again[1, 2] == 5
    handle = heap.get_handle_from_address(array)
    assert heap.get_instance_name(array[1:]) == "m"  # a view of it belongs to the same object
    assert heap.get_instance_length(array) == 6
    assert np.shares_memory(heap.get_object_from_handle(np.ndarray, handle), array)


@pytest.mark.parametrize("align", [8, 16, 64, 256, 4096])
def test_element_0_is_aligned(heap: ManagedHeapMemory, align: int) -> None:
    base = ctypes.addressof(ctypes.c_char.from_buffer(heap.buffer))
    heap.construct_array("pad", 3, np.uint8)  # so the next block does not start aligned by luck
    for dtype in (np.uint8, np.float64, PARTICLE):
        array = heap.construct_array(f"{align}-{np.dtype(dtype)}", 5, dtype, align=align)
        assert (array.ctypes.data - base) % align == 0 and array.ctypes.data % align == 0
        assert array.flags.aligned


def test_the_default_alignment_is_64_bytes(heap: ManagedHeapMemory) -> None:
    for index in range(5):
        assert heap.construct_array(f"a{index}", index + 1, np.float32).ctypes.data % 64 == 0


def test_destroy_gives_the_memory_back(heap: ManagedHeapMemory) -> None:
    free = heap.get_free_memory()
    heap.construct_array("big", (100, 100), np.float64)
    assert heap.get_free_memory() < free - 80000
    assert heap.destroy_array("big") and heap.get_free_memory() == free
    assert heap.find_array("big") is None and not heap.destroy_array("big")
    for name in ("named", UNIQUE, ANONYMOUS):
        heap.destroy_ptr(heap.construct_array(name, 10, np.int16))
        assert heap.get_free_memory() == free
    assert heap.check_sanity() and heap.all_memory_deallocated()


def test_unique_and_find_or_construct(heap: ManagedHeapMemory) -> None:
    unique = heap.find_or_construct_array(UNIQUE, (2, 2), np.int64)
    unique[0, 0] = 9
    assert heap.find_array(UNIQUE)[0, 0] == 9
    assert np.shares_memory(heap.find_or_construct_array(UNIQUE, (2, 2), np.int64), unique)
    with pytest.raises(TypeError, match=r"int64 \(2, 2\), not int64 \(4,\)"):
        heap.find_or_construct_array(UNIQUE, 4, np.int64)
    with pytest.raises(TypeError, match="float32"):
        heap.find_or_construct_array(UNIQUE, (2, 2), np.float32)
    with pytest.raises(NameExists):
        heap.construct_array(UNIQUE, 1, np.int8)
    with pytest.raises(ValueError, match="anonymous"):
        heap.find_array(ANONYMOUS)


def test_arrays_and_other_objects_do_not_mix(heap: ManagedHeapMemory) -> None:
    heap.construct(ctypes.c_int, "number", 3)
    heap.construct_array("array", 2, np.int32)
    with pytest.raises(TypeError, match="not a numpy array"):
        heap.find_array("number")
    with pytest.raises(TypeError, match="not a numpy array"):
        heap.destroy_array("number")
    with pytest.raises(TypeError, match="numpy.ndarray"):
        heap.find(ctypes.c_int, "array")
    with pytest.raises(InvalidPointer):
        heap.destroy_ptr(np.zeros(3))  # an array that is not the segment's


# -- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "dtype", "error", "match"), [
    (3, object, TypeError, "Python objects"),
    (3, [("a", "<i4"), ("b", "O")], TypeError, "Python objects"),
    (3, "S", TypeError, "no fixed size"),
    (3, "not a dtype", TypeError, "not a numpy dtype"),
    (0, "<f8", ValueError, "zero-size"),
    ((4, 0), "<f8", ValueError, "zero-size"),
    (-1, "<f8", ValueError, "<= 0"),
    ((), "<f8", ValueError, "dimensions"),
    ((1,) * 33, "<f8", ValueError, "dimensions"),
    (True, "<f8", TypeError, "bool"),
    (2.0, "<f8", TypeError, "float"),
    ((2**40, 2**40), "<f8", ValueError, "absurdly large"),
    (SIZE, "<f8", BadAlloc, "no room"),
])
def test_bad_requests_are_refused_and_change_nothing(
    heap: ManagedHeapMemory, shape: Any, dtype: Any, error: type[Exception], match: str
) -> None:
    before = bytes(heap.buffer)
    with pytest.raises(error, match=match):
        heap.construct_array("x", shape, dtype)
    assert bytes(heap.buffer) == before


@pytest.mark.parametrize("align", [0, 3, 48, -64])
def test_an_alignment_must_be_a_power_of_two(heap: ManagedHeapMemory, align: int) -> None:
    with pytest.raises(ValueError, match="alignment"):
        heap.construct_array("x", 4, np.uint8, align=align)


@pytest.mark.parametrize(("good", "bad"), [
    ('"<f8"', '"|O8"'),           # an object dtype laid over raw bytes would crash
    ('"shape":[6]', '"shape":[9]'),  # more elements than the block holds
    ('"offset":16', '"offset":-1'),
    ('{"descr"', '["descr"'),      # not the JSON it should be
    ('"<f8"', '"<x8"'),           # not a dtype
    ('"<f8"', '"|V0"'),           # no size
    ('"<f8"', '"2f8"'),           # a subarray dtype: construct_array never stores one
])
def test_a_damaged_description_is_refused(good: str, bad: str) -> None:
    buf = bytearray(SIZE)
    with ManagedExternalBuffer(Mode.CREATE_ONLY, buf) as seg:
        seg.construct_array("a", 6, "<f8")
    assert buf.count(good.encode()) == 1 and len(good) == len(bad)  # the stored length holds
    damaged = bytearray(buf.replace(good.encode(), bad.encode()))
    with ManagedExternalBuffer(Mode.OPEN_ONLY, damaged) as seg:
        with pytest.raises(SegmentCorrupt, match="array description"):
            seg.find_array("a")


@given(where=st.integers(0, 200), byte=st.integers(0, 255))
def test_any_damaged_byte_of_the_description_is_refused_or_harmless(where: int, byte: int) -> None:
    buf = bytearray(SIZE)
    with ManagedExternalBuffer(Mode.CREATE_ONLY, buf) as seg:
        seg.construct_array("a", (2, 3), PARTICLE)
    start = buf.index(b"numpy.ndarray/")
    end = buf.index(b"]}", start) + 2
    buf[start + where % (end - start)] = byte
    with ManagedExternalBuffer(Mode.OPEN_ONLY, buf) as seg:
        try:
            found = seg.find_array("a")
        except (SegmentCorrupt, TypeError):  # damaged, or no longer an array's identity
            return
        if found is not None:  # a description that still parses must fit its block
            block = seg.get_handle_from_address(found) - ENTRY_SIZE
            assert found.nbytes <= seg.usable_size(block)


def test_without_numpy_the_error_names_the_extra(
    heap: ManagedHeapMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)  # ``import numpy`` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'segalloc\[numpy\]'"):
        heap.construct_array("a", 3, "<f8")
    with pytest.raises(ImportError, match="segalloc"):
        heap.find_array("a")
