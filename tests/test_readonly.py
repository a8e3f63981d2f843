"""Objects found in a read-only segment (``framework/readonly.py``, the private mapping of
``backends/mapping.py``): they read the live bytes, so a reader sees a writer's later changes,
and every ordinary write raises ``ReadOnlySegment``; a write that bypasses the guards neither
crashes nor reaches the file."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segalloc import (
    ManagedExternalBuffer,
    ManagedMappedFile,
    ManagedSharedMemory,
    Mode,
    ReadOnlySegment,
    SegmentVector,
)
from segalloc.backends.shared_memory import SHM_DIR

SIZE = 65536
SPAWN = multiprocessing.get_context("spawn")


class Inner(ctypes.Structure):
    _fields_ = [("flag", ctypes.c_int32), ("values", ctypes.c_int32 * 4)]


class Config(ctypes.Structure):
    _fields_ = [("value", ctypes.c_int64), ("inner", Inner), ("pairs", Inner * 2),
                ("label", ctypes.c_char * 8)]


@pytest.fixture(params=["shared_memory", "mapped_file"])
def named(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[type, str, str]]:
    """``(managed class, fresh name, path of its backing file)``; removed afterwards."""
    if request.param == "shared_memory":
        name = f"segalloc-test-{uuid.uuid4().hex}"
        try:
            yield ManagedSharedMemory, name, os.path.join(SHM_DIR, name)
        finally:
            ManagedSharedMemory.remove(name)
    else:
        path = str(tmp_path / "segment")
        yield ManagedMappedFile, path, path


def writes_to(config: Any, array: Any) -> list[Callable[[], object]]:
    """Every ordinary way to change a found object or array."""
    def assign(index: int) -> None:
        config.pairs[1].values[index] = 1

    def add_in_place() -> None:
        array[...] += 1

    return [
        lambda: setattr(config, "value", 1),
        lambda: setattr(config.inner, "flag", 1),
        lambda: config.inner.values.__setitem__(0, 1),
        lambda: setattr(config.pairs[0], "flag", 1),
        lambda: assign(3),
        lambda: setattr(config.pairs[0:2][1], "flag", 1),  # elements of a slice
        lambda: setattr(config, "label", b"x"),
        lambda: delattr(config, "value"),
        lambda: array.__setitem__(0, 1),
        lambda: array[1:].__setitem__(0, 1),
        add_in_place,
        lambda: np.add(array, 1, out=array),
    ]


def test_a_reader_sees_later_writes_and_cannot_write(named: tuple[type, str, str]) -> None:
    cls, name, path = named
    with cls(Mode.CREATE_ONLY, name, SIZE) as writer:
        config = writer.construct(Config, "config")
        numbers = writer.construct_array("numbers", 4, np.int64)
        scalar = writer.construct(ctypes.c_double, "scalar")
        triple = writer.construct(ctypes.c_int16, "triple", count=3)
        writer.flush()
        with cls(Mode.OPEN_READ_ONLY, name) as reader:
            seen, _ = reader.find(Config, "config")
            seen_numbers = reader.find_array("numbers")
            seen_scalar, _ = reader.find(ctypes.c_double, "scalar")
            seen_triple, count = reader.find(ctypes.c_int16, "triple")
            assert isinstance(seen, Config) and seen.value == 0
            config.value = 42
            config.pairs[1].values[3] = 7
            config.label = b"live"
            numbers[2] = -5
            scalar.value = 2.5
            triple[2] = 3
            assert (seen.value, seen.pairs[1].values[3], seen.label) == (42, 7, b"live")
            assert seen_numbers.tolist() == [0, 0, -5, 0] and seen_scalar.value == 2.5
            assert (count, list(seen_triple)) == (3, [0, 0, 3])
            writer.flush()
            before = Path(path).read_bytes()
            for write in [*writes_to(seen, seen_numbers), lambda: setattr(seen_scalar, "value", 1),
                          lambda: seen_triple.__setitem__(0, 1)]:
                with pytest.raises(ReadOnlySegment):
                    write()
            for numpy_write in (lambda: seen_numbers.fill(0),
                                lambda: np.copyto(seen_numbers, 1),
                                lambda: setattr(seen_numbers.flags, "writeable", True)):
                with pytest.raises(ValueError):
                    numpy_write()
            assert (seen.value, seen_numbers.tolist()) == (42, [0, 0, -5, 0])
            # a write past the guards lands on a private page: no fault, the file unchanged
            memoryview(seen).cast("B")[:8] = bytes(8)
            ctypes.memmove(ctypes.addressof(seen.inner), b"\xff" * 4, 4)
            assert Path(path).read_bytes() == before and config.value == 42
            assert reader.get_instance_name(seen) == "config"
            assert reader.get_instance_name(seen_numbers) == "numbers"
            assert reader.check_sanity()


def read_after_the_writer(cls: type, name: str, ready: Event, written: Event, results: Any) -> None:
    """Spawned reader: find read-only, wait for the writer's change, report what it sees."""
    with cls(Mode.OPEN_READ_ONLY, name) as reader:
        config, _ = reader.find(Config, "config")
        numbers = reader.find_array("numbers")
        ready.set()
        written.wait(30)
        try:
            config.value = 0
            refused = False
        except ReadOnlySegment:
            refused = True
        results.put((config.value, config.inner.values[2], numbers.tolist(), refused))
        del config, numbers


def test_a_reader_process_sees_the_writers_later_change(named: tuple[type, str, str]) -> None:
    cls, name, _ = named
    with cls(Mode.CREATE_ONLY, name, SIZE) as writer:
        config = writer.construct(Config, "config")
        numbers = writer.construct_array("numbers", 3, np.int32)
        ready, written, results = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
        child = SPAWN.Process(target=read_after_the_writer, args=(cls, name, ready, written, results))
        child.start()
        try:
            assert ready.wait(60)
            config.value = 42
            config.inner.values[2] = 9
            numbers[:] = [1, 2, 3]
            written.set()
            assert results.get(timeout=30) == (42, 9, [1, 2, 3], True)
        finally:
            child.join(60)
        assert child.exitcode == 0
        del config, numbers


def test_an_external_buffer_read_only_views_the_callers_live_bytes() -> None:
    buf = bytearray(SIZE)
    writer = ManagedExternalBuffer(Mode.CREATE_ONLY, buf)
    config = writer.construct(Config, "config")
    reader = ManagedExternalBuffer(Mode.OPEN_READ_ONLY, buf)
    seen, _ = reader.find(Config, "config")
    config.value = 42
    assert seen.value == 42
    with pytest.raises(ReadOnlySegment):
        seen.inner.values[0] = 1
    del config, seen
    reader.close()
    writer.close()


def test_an_immutable_buffer_gives_copies_that_refuse_writes_too() -> None:
    buf = bytearray(SIZE)
    with ManagedExternalBuffer(Mode.CREATE_ONLY, buf) as writer:
        writer.construct(Config, "config").value = 5
        writer.construct_array("numbers", 2, np.int8)[:] = [3, 4]
    with ManagedExternalBuffer(Mode.OPEN_READ_ONLY, bytes(buf)) as reader:
        config, _ = reader.find(Config, "config")
        numbers = reader.find_array("numbers")
        assert config.value == 5 and numbers.tolist() == [3, 4]
        for write in writes_to(config, numbers):
            with pytest.raises(ReadOnlySegment):
                write()


def test_a_vector_buffer_is_read_only_in_a_read_only_segment() -> None:
    buf = bytearray(SIZE)
    with ManagedExternalBuffer(Mode.CREATE_ONLY, buf) as writer:
        writer.construct(SegmentVector[ctypes.c_int64], "v", [1, 2, 3])
    with ManagedExternalBuffer(Mode.OPEN_READ_ONLY, bytes(buf)) as reader:
        vec = reader.find(SegmentVector[ctypes.c_int64], "v")[0]
        view = vec.memoryview()
        assert view.readonly and view.tolist() == [1, 2, 3]
        array = np.asarray(vec)
        assert not array.flags.writeable and array.tolist() == [1, 2, 3]
