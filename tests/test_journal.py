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
    BadAlloc,
    Command,
    ManagedExternalBuffer,
    ManagedHeapMemory,
    ManagedMappedFile,
    Mode,
    SegmentCorrupt,
    SegmentDict,
    SegmentVector,
    plugins,
)
from segalloc.intrinsics import next_change
from segalloc.journal import _Chain, journal_capacity
from segalloc.segment import smallest_journaled_size
from segalloc.words import DIRTY_WORD

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
    """Stands in for a word view and keeps the bytes after every store (for ``_undo``)."""

    def __init__(self, words: Any, buffer: memoryview, images: list[bytes]) -> None:
        self.words, self.buffer, self.images = words, buffer, images

    def __getitem__(self, index: Any) -> Any:
        return self.words[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self.words[index] = value
        self.images.append(bytes(self.buffer))

    def __len__(self) -> int:
        return len(self.words)


def crash_images(seg: Any, operation: Callable[[], object], every: int = 1) -> list[bytes]:
    """Run ``operation`` and return the segment's bytes after each of its metadata writes
    (every ``every``-th for long operations), as a crash could leave them."""
    images: list[bytes] = []
    stores = 0

    def snapshot(index: int) -> None:
        nonlocal stores
        stores += 1
        if stores % every == 0:
            images.append(bytes(seg.buffer))

    seg._journal.words.observe(snapshot)
    try:
        operation()
    finally:
        seg._journal.words.observe(None)
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


def fail_at_store(words: Any, nth: int) -> list[int]:
    """Make the ``nth`` store through ``words`` raise (after it is written): a failure between
    two of an operation's writes. The returned list counts the stores seen."""
    stores = [0]

    def observer(index: int) -> None:
        stores[0] += 1
        if stores[0] == nth:
            raise RuntimeError("simulated failure after some of the writes")

    words.observe(observer)
    return stores


def test_an_exception_inside_an_operation_rolls_it_back(segment: Any) -> None:
    """An exception raised between two of an operation's writes (here by a store observer,
    after the third store) leaves the segment as it was."""
    live = _prepare(segment, [100, 200, 300, 400])
    before = census(segment)
    stores = fail_at_store(segment._journal.words, 3)
    with pytest.raises(RuntimeError):
        segment.deallocate(live[0])
    segment._journal.words.observe(None)
    assert stores[0] == 3
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


# -- transactions of any size ---------------------------------------------------------------
def chain_length(seg: Any) -> int:
    return len(_Chain(seg._journal.raw, seg._journal.offset).headers)


def state_bytes(seg: Any) -> bytes:
    """The segment's bytes but the base extent's log area (what it logged last is no state)."""
    journal = seg._journal
    start = journal.offset + 32
    end = start + 16 * journal.base_capacity
    image = bytes(seg.buffer)
    return image[:start] + image[end:]


def live_bytes(seg: Any) -> list[bytes]:
    """The whole of every allocated block but the journal's, and the segment header."""
    journal = seg._journal.offset
    return [bytes(seg.buffer[:64])] + [bytes(seg.view(offset, size)) for offset, size
                                       in sorted(seg.algorithm.allocated_blocks())
                                       if offset != journal]


def before_then_after(images: list[bytes], before: Any, after: Any) -> None:
    """Each image recovers to the state before the transaction until its commit, and to the
    state after it from then on (while the extents are being given back)."""
    states = [census(reopened(image)) for image in images] + [census(reopened(images[-1]))]
    assert all(state in (before, after) for state in states), "a half-done state is visible"
    committed = states.index(after) if after in states else len(states)
    assert all(state == after for state in states[committed:])


LARGE: dict[str, Callable[[Any], object]] = {
    "dict_update_200": lambda seg: seg.find(SegmentDict[bytes, ctypes.c_int64], "d")[0].update(
        {f"key-{i}".encode(): i for i in range(200)}),
    "vector_append_300": lambda seg: [
        seg.find(SegmentVector[ctypes.c_int64], "v")[0].append(i) for i in range(300)],
    "construct_200": lambda seg: [seg.construct(ctypes.c_int64, f"n-{i}", i) for i in range(200)],
}


def _with_containers(seg: Any) -> None:
    seg.construct(SegmentDict[bytes, ctypes.c_int64], "d")
    seg.construct(SegmentVector[ctypes.c_int64], "v")


@pytest.mark.parametrize("operation", sorted(LARGE))
def test_an_aborted_large_transaction_rolls_back(segment: Any, operation: str) -> None:
    """Before: 80 keys and more, 300 appends, stayed after the abort (the journal overflowed)."""
    _with_containers(segment)
    before, raw_before = census(segment), state_bytes(segment)
    with pytest.raises(RuntimeError, match="abort"), segment.transaction():
        LARGE[operation](segment)
        assert chain_length(segment) > 1, "the transaction should have outgrown the base extent"
        raise RuntimeError("abort")
    assert census(segment) == before and segment.check_sanity()
    assert chain_length(segment) == 1, "the extents were not given back"
    assert state_bytes(segment) == raw_before


def test_a_transaction_word_set_back_past_its_extent_is_refused(segment: Any) -> None:
    """A transaction word damaged below the first entry of the extent in use would make the
    next entry's index negative, which compiled code wraps into some other word of the
    segment: the next logged store raises ``SegmentCorrupt`` instead, and the rollback ends
    the transaction."""
    _with_containers(segment)
    vector = segment.find(SegmentVector[ctypes.c_int64], "v")[0]
    words = segment._journal.words
    with pytest.raises(SegmentCorrupt, match=r"transaction word \(\d+\) went back"):
        with segment.transaction():
            while not words.first:  # on into the second extent
                vector.append(1)
            segment._journal.raw[DIRTY_WORD] = words.first - 1
            vector.append(2)
    assert segment._journal.pending() == 0


def _count_attaches(seg: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the rebuilds of the pre-transaction state (``_clean_run``'s copy of the segment)."""
    calls: list[int] = []
    cls = type(seg.algorithm)
    attach = cls.attach

    def counting(buf: memoryview, offset: int) -> Any:
        calls.append(len(buf))
        return attach(buf, offset)

    monkeypatch.setattr(cls, "attach", staticmethod(counting))
    return calls


def test_extents_over_clean_memory_cost_no_copy_of_the_segment(
        segment: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every extent copied the whole segment (a 500-construct transaction on 256 MiB
    took a second); memory that is zero or logged already is clean on sight."""
    _with_containers(segment)
    rebuilt = _count_attaches(segment, monkeypatch)
    for _ in range(2):  # the second time over the memory the first one's extents gave back
        with segment.transaction():
            LARGE["construct_200"](segment)
            assert chain_length(segment) > 1
        for i in range(200):
            segment.destroy(ctypes.c_int64, f"n-{i}")
    assert rebuilt == [] and segment.check_sanity()


def test_extents_over_dirty_free_memory_rebuild_the_state_and_roll_back(
        segment: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Free memory full of old data: the extent's clean run comes from the rebuilt state, and
    the aborted transaction leaves the bytes as they were."""
    _with_containers(segment)
    blocks = []
    while (block := segment.allocate(4096, nothrow=True)) is not None:
        segment.view(block, 4096)[:] = b"\xa5" * 4096
        blocks.append(block)
    for block in blocks:
        segment.deallocate(block)
    rebuilt = _count_attaches(segment, monkeypatch)
    before, raw_before = census(segment), live_bytes(segment)
    with pytest.raises(RuntimeError, match="abort"), segment.transaction():
        LARGE["dict_update_200"](segment)
        assert chain_length(segment) > 1
        raise RuntimeError("abort")
    assert rebuilt, "dirty free memory should need the rebuilt state"
    assert census(segment) == before and live_bytes(segment) == raw_before
    assert segment.check_sanity()  # (free memory's old data may read zero now: it is no state)


def test_bytes_stored_over_equal_bytes_log_no_entry_and_roll_back(segment: Any) -> None:
    """``store_bytes`` logs the words it changes: equal bytes cost no journal entry, two
    changed words two (one of them covered only in part), and an abort brings the old bytes
    back."""
    handle = segment.allocate(256)
    segment.view(handle, 256)[:] = bytes(range(256))
    words = segment._journal.words
    raw_before = state_bytes(segment)
    with pytest.raises(RuntimeError, match="abort"), segment.transaction():
        segment.view(handle, 8)[:] = bytes(range(8))  # (the view logs nothing itself)
        entries = segment._journal.pending()
        words.store_bytes(handle + 3, bytes(range(3, 200)))
        assert segment._journal.pending() == entries, "equal bytes were logged"
        changed = bytearray(range(3, 200))
        changed[5 + 40] ^= 1  # byte 48 of the block: word 6
        changed[0] ^= 1  # byte 3: word 0, which the bytes cover only in part
        words.store_bytes(handle + 3, bytes(changed))
        assert segment._journal.pending() == entries + 2
        assert bytes(segment.view(handle + 3, len(changed))) == changed
        raise RuntimeError("abort")
    assert state_bytes(segment) == raw_before and segment.check_sanity()


@given(st.binary(max_size=40), st.binary(max_size=40), st.integers(0, 8), st.integers(0, 45))
def test_next_change_finds_the_first_differing_byte(old: bytes, new: bytes, at: int,
                                                    start: int) -> None:
    """The interpreted ``next_change`` (compiled callers get the inline C one, which the
    entry counts above hold to the same answers)."""
    view = memoryview(bytes(at) + old)
    if at + len(new) > len(view):
        with pytest.raises(IndexError):
            next_change(view, at, new, start)
        return
    expected = next((k for k in range(start, len(new)) if view[at + k] != new[k]), len(new))
    assert next_change(view, at, new, start) == expected


def test_a_zeroed_array_over_zero_memory_logs_its_header_not_its_elements(segment: Any) -> None:
    """A construct over never-used memory journals the object's header, name and the
    allocator's words; its zero elements already are what it writes."""
    import numpy  # (the test extra installs it)

    with segment.transaction():
        segment.construct_array("big", (4096,), numpy.float64)  # 4,096 zero words
        assert 0 < segment._journal.pending() < 200
    assert segment.find_array("big").sum() == 0 and segment.check_sanity()


# -- segments without a journal (heap, external buffers) undo in the process ---------------------
UNJOURNALED: dict[str, Callable[[str], Any]] = {
    "heap": lambda algorithm: ManagedHeapMemory(SIZE, algorithm=algorithm),
    "external": lambda algorithm: ManagedExternalBuffer(Mode.CREATE_ONLY, bytearray(SIZE),
                                                        algorithm=algorithm),
}


@pytest.fixture(params=[(kind, algorithm) for kind in UNJOURNALED for algorithm in ALGORITHMS],
                ids=lambda param: "-".join(param))
def unjournaled(request: pytest.FixtureRequest) -> Iterator[Any]:
    kind, algorithm = request.param
    seg = UNJOURNALED[kind](algorithm)
    assert not seg._journal.active
    yield seg
    seg.close()


@pytest.mark.parametrize("operation", sorted(LARGE))
def test_an_aborted_transaction_without_a_journal_rolls_back(unjournaled: Any,
                                                             operation: str) -> None:
    """Before: a heap or external-buffer segment kept everything done before the exception."""
    _with_containers(unjournaled)
    _prepare(unjournaled, [100, 2000, 300, 64, 64])
    before, raw_before = census(unjournaled), bytes(unjournaled.buffer)
    with pytest.raises(RuntimeError, match="abort"), unjournaled.transaction():
        LARGE[operation](unjournaled)
        assert census(unjournaled) != before
        raise RuntimeError("abort")
    assert census(unjournaled) == before and unjournaled.check_sanity()
    assert bytes(unjournaled.buffer) == raw_before


def test_an_undo_log_that_outgrew_its_kept_size_still_rolls_back(unjournaled: Any) -> None:
    """The undo log doubles past its first capacity and is cut back after an operation that
    outgrew it many times over: both the huge rollback (the same words stored over and over,
    rolled back newest first) and the next small one are exact."""
    _with_containers(unjournaled)
    vector = unjournaled.find(SegmentVector[ctypes.c_int64], "v")[0]
    vector.extend(range(100))
    for size in (100_000, 10):
        raw_before = bytes(unjournaled.buffer)
        with pytest.raises(RuntimeError, match="abort"), unjournaled.transaction():
            for i in range(size):
                vector[i % 100] = -i - 1  # a new value each time: every store is logged
            assert unjournaled.words.undo_count >= size
            raise RuntimeError("abort")
        assert bytes(unjournaled.buffer) == raw_before and list(vector) == list(range(100))
    assert unjournaled.check_sanity()


def test_an_exception_inside_an_operation_without_a_journal_rolls_it_back(unjournaled: Any) -> None:
    """A construct that fails after some of its writes (a store observer raising at the fifth)
    leaves the segment byte for byte as it was; the next one commits."""
    _prepare(unjournaled, [100, 200, 300, 400])
    before, raw_before = census(unjournaled), bytes(unjournaled.buffer)
    stores = fail_at_store(unjournaled.words, 5)
    with pytest.raises(RuntimeError, match="simulated"):
        unjournaled.construct(ctypes.c_int64 * 40, "late", 3)
    unjournaled.words.observe(None)
    assert stores[0] >= 5  # (the construct's own clean-up stores after the failure too)
    assert census(unjournaled) == before and bytes(unjournaled.buffer) == raw_before
    unjournaled.construct(ctypes.c_int64 * 40, "late", 3)
    assert unjournaled.find(ctypes.c_int64 * 40, "late")[0][0] == 3
    assert not unjournaled.words.logging and not unjournaled.words.recording


@pytest.mark.parametrize("operation", sorted(LARGE))
def test_a_committed_large_transaction_gives_its_extents_back(segment: Any, operation: str) -> None:
    _with_containers(segment)
    free = segment.get_free_memory()
    with segment.transaction():
        LARGE[operation](segment)
    assert chain_length(segment) == 1 and segment._journal.pending() == 0
    assert segment.check_sanity() and segment.get_free_memory() < free
    if operation == "dict_update_200":
        assert len(segment.find(SegmentDict[bytes, ctypes.c_int64], "d")[0]) == 200


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_crash_inside_a_large_transaction_rolls_it_back(tmp_path: Path, algorithm: str) -> None:
    """Before: a SIGKILL inside 200 inserts left all of them."""
    seg = ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "s", SIZE, algorithm=algorithm)
    before = census(seg)

    def inserts() -> None:
        with seg.transaction():
            LARGE["construct_200"](seg)

    images = crash_images(seg, inserts, every=97)
    assert len(images) > 10
    before_then_after(images, before, census(seg))
    seg.close()


def test_a_crash_while_the_name_index_doubles_loses_no_names(tmp_path: Path) -> None:
    """Before: 13 of 100 kills during the doubling from 2,048 to 4,096 buckets lost ~480
    names in a segment that opened as verified."""
    seg = ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "s", 1 << 20)
    for i in range(2048):
        seg.construct(ctypes.c_int32, f"name-{i}", i)
    assert seg._index._root()[0] == 2048
    before = census(seg)
    images = crash_images(seg, lambda: seg.construct(ctypes.c_int32, "the-2049th", 1), every=211)
    assert seg._index._root()[0] == 4096 and len(images) > 10
    for image in images[:-1]:
        survivor = reopened(image)
        assert survivor.recovered is not None and census(survivor) == before
        assert survivor.num_named_objects() == 2048
    seg.close()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_24k_segment_is_journaled_and_rolls_back_a_transaction(tmp_path: Path,
                                                                 algorithm: str) -> None:
    """Before: segments under 32 KiB had no journal; a kill inside 5 inserts left them."""
    seg = ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "s", 24 * 1024, algorithm=algorithm)
    assert seg._journal.active
    before = census(seg)

    def inserts() -> None:
        with seg.transaction():
            for i in range(5):
                seg.construct(ctypes.c_int64, f"small-{i}", i)

    images = crash_images(seg, inserts)
    after = census(seg)
    assert len(after[4]) == 5
    before_then_after(images, before, after)
    seg.close()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_journal_exhaustion_fails_whole_and_changes_nothing(tmp_path: Path, algorithm: str) -> None:
    """A transaction whose log finds no room raises ``BadAlloc``; the segment is as before."""
    seg = ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "s", 1 << 16, algorithm=algorithm)
    big = seg.allocate(seg.get_free_memory() // 2)
    data = seg.view(big)
    data[:] = (bytes(range(256)) * (len(data) // 256 + 1))[: len(data)]
    before, raw_before = census(seg), state_bytes(seg)
    with pytest.raises(BadAlloc), seg.transaction():
        while seg.allocate(64, nothrow=True) is not None:  # fill the rest
            pass
        seg.write(big, bytes(seg.usable_size(big)))  # needs an entry a word: no room left
    assert census(seg) == before and state_bytes(seg) == raw_before
    assert chain_length(seg) == 1 and seg.check_sanity()
    seg.close()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_smallest_segment_is_stated_and_smaller_is_refused(tmp_path: Path,
                                                              algorithm: str) -> None:
    smallest = smallest_journaled_size(algorithm)
    ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "ok", smallest, algorithm=algorithm).close()
    with pytest.raises(ValueError, match=f"needs at least {smallest} bytes"):
        ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "no", smallest - 8, algorithm=algorithm)
    assert not (tmp_path / "no").exists()


def test_a_crash_while_recovering_is_recovered_again(tmp_path: Path) -> None:
    """Every state an interrupted rollback can leave (after any of its stores) recovers to the
    state before the transaction."""
    from segalloc.journal import _undo
    from segalloc.words import word_view

    seg = ManagedMappedFile(Mode.CREATE_ONLY, tmp_path / "s", SIZE)
    before = census(seg)

    def inserts() -> None:
        with seg.transaction():
            LARGE["construct_200"](seg)

    images = crash_images(seg, inserts, every=401)
    half_done = next(image for image in reversed(images)
                     if int.from_bytes(image[88:96], "little") > seg._journal.base_capacity)
    scratch = bytearray(half_done)
    recovery: list[bytes] = []
    _undo(_Recorder(word_view(memoryview(scratch)), memoryview(scratch), recovery),
          seg._journal.offset)
    assert len(recovery) > 100
    for image in recovery[:: max(1, len(recovery) // 40)]:
        assert census(reopened(image)) == before
    seg.close()
