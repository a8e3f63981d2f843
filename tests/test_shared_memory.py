"""Shared-memory storage (``backends/shared_memory.py``): names, the POSIX object behind a
name, and scenario 3 (a segment grows and shrinks while unmapped) on every algorithm."""

from __future__ import annotations

import _posixshmem
import ctypes
import mmap
import os

import pytest

from segalloc import ManagedSharedMemory, Mode, plugins
from segalloc.backends.shared_memory import SHM_DIR, SharedMemoryStorage
from segalloc.locking import MAGIC, TRAILER

ALGORITHMS = sorted(plugins().algorithms)


@pytest.mark.parametrize(
    "bad, error",
    [
        ("", ValueError),
        ("a/b", ValueError),
        ("/leading-slash", ValueError),
        (".", ValueError),
        ("..", ValueError),
        ("nul\0byte", ValueError),
        ("x" * 256, ValueError),
        ("é" * 128, ValueError),
        (b"bytes", TypeError),
        (17, TypeError),
    ],
)
def test_names_are_validated(bad: object, error: type[Exception]) -> None:
    for call in (
        lambda: SharedMemoryStorage.open(Mode.CREATE_ONLY, bad, 4096),
        lambda: SharedMemoryStorage.open(Mode.OPEN_ONLY, bad),
        lambda: ManagedSharedMemory.remove(bad),
        lambda: SharedMemoryStorage.resizing(bad).__enter__(),
    ):
        with pytest.raises(error, match="name"):
            call()


def test_the_longest_name_works(shm_name: str) -> None:
    name = (shm_name + "x" * 255)[:255]
    try:
        with ManagedSharedMemory(Mode.CREATE_ONLY, name, 4096) as seg:
            assert seg.get_size() == 4096
    finally:
        ManagedSharedMemory.remove(name)


def test_the_segment_is_the_posix_object_of_that_name(shm_name: str) -> None:
    with ManagedSharedMemory(Mode.CREATE_ONLY, shm_name, 8192) as seg:
        seg.construct(ctypes.c_int64, "MyInt", 99)
        assert os.path.exists(os.path.join(SHM_DIR, shm_name))
        fd = _posixshmem.shm_open("/" + shm_name, os.O_RDONLY)
        try:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as other:
                assert other[:8] == b"SEGALLOC" and len(other) == 8192 + TRAILER
                assert other[:8192] == bytes(seg.buffer) and other[-len(MAGIC):] == MAGIC
        finally:
            os.close(fd)
        assert seg.storage.base_alignment == mmap.PAGESIZE


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_scenario_3_a_segment_can_grow(shm_name: str, algorithm: str) -> None:
    """Boost's scenario with 2000 bytes instead of 1000 (a journaled segment of 1000 bytes has
    no room left for the object under best_fit and segregated_fit): holding a named object;
    unmapped, it grows by 500 and is found at 2500 bytes; shrunk to fit, it is smaller than
    2000 bytes and the object is still there."""
    with ManagedSharedMemory(Mode.CREATE_ONLY, shm_name, 2000, algorithm=algorithm) as seg:
        seg.construct(ctypes.c_int, "MyInt", 7)
    ManagedSharedMemory.grow(shm_name, 500)
    with ManagedSharedMemory(Mode.OPEN_ONLY, shm_name) as seg:
        assert seg.get_size() == 2500
        obj, count = seg.find(ctypes.c_int, "MyInt")
        assert (obj.value, count) == (7, 1)
        assert seg.check_sanity()
    new_size = ManagedSharedMemory.shrink_to_fit(shm_name)
    with ManagedSharedMemory(Mode.OPEN_ONLY, shm_name) as seg:
        assert seg.get_size() == new_size < 2000
        obj, count = seg.find(ctypes.c_int, "MyInt")
        assert (obj.value, count) == (7, 1)
        assert seg.check_sanity()


def test_class_level_grow_needs_a_name(shm_name: str) -> None:
    with ManagedSharedMemory(Mode.CREATE_ONLY, shm_name, 4096) as seg:
        with pytest.raises(TypeError, match="class-level"):
            type(seg).grow(seg, 100)
        with pytest.raises(TypeError, match="class-level"):
            type(seg).shrink_to_fit(seg)


def test_the_managed_class_documents_its_arguments() -> None:
    assert ManagedSharedMemory.storage_class is SharedMemoryStorage
    assert "permissions" in (ManagedSharedMemory.__doc__ or "")


def test_growing_an_open_segment_says_how_to_grow_it(shm_name: str) -> None:
    """``shm.grow(n)`` on an open instance names the class-level call instead of a bare
    'missing argument' error; the class-level calls still work once it is closed."""
    with ManagedSharedMemory(Mode.CREATE_ONLY, shm_name, 65536) as shm:
        with pytest.raises(TypeError, match=r"close it and call ManagedSharedMemory\.grow\(name, 4096\)"):
            shm.grow(4096)
        with pytest.raises(TypeError, match=r"call ManagedSharedMemory\.shrink_to_fit\(name\)"):
            shm.shrink_to_fit()
        assert shm.get_size() == 65536
    ManagedSharedMemory.grow(shm_name, 4096)
    with ManagedSharedMemory(Mode.OPEN_ONLY, shm_name) as shm:
        assert shm.get_size() == 65536 + 4096
