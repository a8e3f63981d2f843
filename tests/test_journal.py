"""Crash consistency, exhaustively: a crash after *every* metadata write of an operation.

A process killed inside an operation leaves exactly the bytes written so far. Recording the
segment's bytes after each journaled write of one operation gives every state a SIGKILL could
leave (the journal's own stores are ordered so the states between them are equivalent). Each
such image, opened again, must come back as the segment before the operation, and the image
after the commit as the segment after it. ``test_crash.py`` does the same with real SIGKILLs.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segalloc import (
    Command,
    ManagedExternalBuffer,
    ManagedMappedFile,
    Mode,
    plugins,
)
from segalloc.journal import journal_capacity

ALGORITHMS = sorted(plugins().algorithms)
SIZE = 1 << 18


def census(seg: Any) -> tuple[Any, ...]:
    """Everything that defines the segment's state to its users."""
    alg = seg.algorithm
    blocks = sorted(alg.allocated_blocks())
    journal = seg._journal.offset  # its bytes are the log itself, not state
    contents = [bytes(seg.view(offset, min(size, 64))) for offset, size in blocks
                if offset != journal]
    names = sorted((o.name, o.handle, o.count) for o in seg.named_objects())
    return blocks, contents, sorted(alg.free_blocks()), alg.free_memory, names


class _Recorder:
    """Stands in for the journaling word view and keeps the bytes after every store."""

    def __init__(self, words: Any, buffer: memoryview, images: list[bytes]) -> None:
        self.words, self.buffer, self.images = words, buffer, images

    def __getitem__(self, index: Any) -> Any:
        return self.words[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self.words[index] = value
        self.images.append(bytes(self.buffer))

    def __len__(self) -> int:
        return len(self.words)


def crash_images(seg: Any, operation: Callable[[], object]) -> list[bytes]:
    """Run ``operation`` and return the segment's bytes after each of its metadata writes."""
    images: list[bytes] = []
    words = seg.algorithm.words
    recorder = _Recorder(words, seg.buffer, images)
    seg.algorithm.words = seg._index.words = recorder
    try:
        operation()
    finally:
        seg.algorithm.words = seg._index.words = words
    return images


def reopened(image: bytes) -> Any:
    return ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(image))


@pytest.fixture(params=ALGORITHMS)
def segment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    seg = ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "segment", SIZE, algorithm=request.param)
    yield seg
    seg.close()


def test_named_segments_carry_a_journal(segment: Any) -> None:
    assert segment._journal.base_capacity == journal_capacity(SIZE) > 0
    assert segment.algorithm.words is segment._journal.words
    handle = segment.allocate(100)
    assert segment._journal.pending() == 0, "an operation left its transaction open"
    segment.deallocate(handle)
    assert segment._journal.pending() == 0


def _prepare(seg: Any, sizes: list[int]) -> list[int]:
    handles = [seg.allocate(size) for size in sizes]
    for handle in handles:
        seg.view(handle, 8)[:] = handle.to_bytes(8, "little")
    for handle in handles[1::3]:
        seg.deallocate(handle)
    seg.construct(ctypes.c_int, "anchor", 7)
    return [h for i, h in enumerate(handles) if i % 3 != 1]


OPERATIONS: dict[str, Callable[[Any, list[int]], object]] = {
    "allocate": lambda seg, live: seg.allocate(300),
    "allocate_aligned": lambda seg, live: seg.allocate_aligned(200, 256),
    "deallocate": lambda seg, live: seg.deallocate(live[len(live) // 2]),
    "expand_fwd": lambda seg, live: seg.allocation_command(
        Command.EXPAND_FWD | Command.ALLOCATE_NEW | Command.NOTHROW, 2000, 3000, live[0]),
    "expand_bwd": lambda seg, live: seg.allocation_command(
        Command.EXPAND_BWD | Command.NOTHROW, 700, 900, live[-1]),
    "shrink": lambda seg, live: seg.allocation_command(
        Command.TRY_SHRINK_IN_PLACE, seg.usable_size(live[1]), 16, live[1]),
    "allocate_many": lambda seg, live: seg.allocate_many([40, 400, 4000]),
    "deallocate_many": lambda seg, live: seg.deallocate_many(live[:3]),
    "construct": lambda seg, live: seg.construct(ctypes.c_double * 4, "crash-test"),
    "destroy": lambda seg, live: seg.destroy(ctypes.c_int, "anchor"),
    "reserve_named_objects": lambda seg, live: seg.reserve_named_objects(64),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_crash_after_any_write_rolls_back(segment: Any, operation: str) -> None:
    live = _prepare(segment, [48, 500, 96, 2000, 64, 700, 128, 5000, 32, 256])
    before = census(segment)
    images = crash_images(segment, lambda: OPERATIONS[operation](segment, live))
    after = census(segment)
    if operation == "expand_bwd" and not images:  # an algorithm may not expand backwards
        assert after == before
        return
    assert images, f"{operation} wrote no metadata through the algorithm's word view"
    for number, image in enumerate(images[:-1]):
        survivor = reopened(image)
        assert survivor.recovered is not None, f"write {number}: nothing to recover"
        assert survivor.check_sanity(), f"write {number}: recovered segment is not sane"
        assert census(survivor) == before, f"{operation}: crash after write {number} not undone"
    committed = reopened(bytes(segment.buffer))
    assert committed.recovered is None
    assert census(committed) == after


def test_an_exception_inside_an_operation_rolls_it_back(segment: Any) -> None:
    live = _prepare(segment, [100, 200, 300, 400])
    before = census(segment)
    deallocate = type(segment.algorithm).deallocate

    def fail_half_way(alg: Any, offset: int) -> None:
        deallocate(alg, offset)
        raise RuntimeError("simulated failure after the writes")

    segment.algorithm.deallocate = fail_half_way.__get__(segment.algorithm)
    with pytest.raises(RuntimeError):
        segment.deallocate(live[0])
    del segment.algorithm.deallocate
    assert census(segment) == before and segment.check_sanity()


def test_lock_holders_recover_what_a_dead_holder_left(segment: Any, tmp_path: Path) -> None:
    """The next process to lock (not only to open) rolls back: simulated with a second handle."""
    other = ManagedMappedFile(Mode.OPEN_ONLY, tmp_path / "segment")
    before = census(other)
    images = crash_images(segment, lambda: segment.allocate(1000))
    segment.buffer[:] = images[len(images) // 2]  # the bytes a killed holder would leave
    assert other._journal.pending()
    assert other.get_free_memory() == before[3]
    assert other.recovered and census(other) == before
    other.close()


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 3000), min_size=3, max_size=12),
       operation=st.sampled_from(sorted(OPERATIONS)), algorithm=st.sampled_from(ALGORITHMS))
def test_random_states_recover_from_any_crash(tmp_path_factory: pytest.TempPathFactory,
                                              sizes: list[int], operation: str,
                                              algorithm: str) -> None:
    path = tmp_path_factory.mktemp("random") / "segment"
    seg = ManagedMappedFile(Mode.CREATE_ONLY, path, SIZE, algorithm=algorithm)
    try:
        live = _prepare(seg, sizes + [64, 64, 64])
        before = census(seg)
        try:
            images = crash_images(seg, lambda: OPERATIONS[operation](seg, live))
        except Exception:  # the operation may legitimately refuse (no room, bad shrink, ...)
            assert census(seg) == before
            return
        for image in images[:-1]:
            assert census(reopened(image)) == before
    finally:
        seg.close()
