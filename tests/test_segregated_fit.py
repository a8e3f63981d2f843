"""Tests of ``segalloc.algorithms.segregated_fit`` (TLSF) on a bare buffer, without a segment manager.

The conformance suite runs the same interface through the managers; these tests pin what is
particular to TLSF: the mapping's good-fit promise, the in-segment lists and bitmaps, exact
coalescing, the catch-all list of a grown segment, and damage detection.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from segalloc.algorithms import segregated_fit as sf
from segalloc.algorithms.segregated_fit import SegregatedFit
from segalloc.errors import InvalidPointer, SegmentCorrupt
from segalloc.interfaces import Command

START = 128


def make(size: int = 65536, spare: int = 0) -> tuple[bytearray, SegregatedFit]:
    """A region of ``size`` bytes at START in a buffer with ``spare`` bytes after it."""
    raw = bytearray(START + size + spare)
    return raw, SegregatedFit.format(memoryview(raw), START, size)


def fill(raw: bytearray, offset: int, size: int, byte: int) -> None:
    raw[offset : offset + size] = bytes([byte]) * size


def accounted(alg: SegregatedFit) -> int:
    """Free spans plus live spans: constant while the region keeps its size."""
    return alg.free_memory + sum(usable + 8 for _, usable in alg.allocated_blocks())


# -- mapping ------------------------------------------------------------------------------
@given(st.integers(0, 1 << 34), st.integers(0, 1 << 34))
def test_search_index_only_reaches_lists_whose_blocks_fit(size: int, other: int) -> None:
    wanted, span = sf.span_for(size), sf.span_for(other)
    if sf.list_index(span) >= sf.search_index(wanted):
        assert span >= wanted


@given(st.integers(0, 1 << 34))
def test_list_index_is_monotonic_and_search_rounds_up(size: int) -> None:
    span = sf.span_for(size)
    assert sf.list_index(span) <= sf.list_index(span + sf.LAYOUT.ALIGN)
    assert sf.list_index(span) <= sf.search_index(span) <= sf.list_index(span) + 1


def test_payload_and_alignment_constants() -> None:
    _, alg = make()
    offset = alg.allocate(100)
    assert offset is not None and offset % SegregatedFit.ALIGNMENT == 0
    assert alg.usable_size(offset) == 104  # 100 + 8 of header, rounded to 112 of span
    assert SegregatedFit.PAYLOAD_PER_ALLOCATION == 8


# -- allocation ---------------------------------------------------------------------------
def test_blocks_do_not_overlap_are_aligned_and_inside_the_region() -> None:
    raw, alg = make()
    rng = random.Random(1)
    live: dict[int, int] = {}
    byte: dict[int, int] = {}
    while True:
        size = rng.choice([0, 1, 24, 25, 100, 255, 256, 1000, 3000])
        offset = alg.allocate(size)
        if offset is None:
            break
        byte[offset] = len(live) % 251
        fill(raw, offset, size, byte[offset])
        live[offset] = size
    alg.verify()
    spans = sorted((off, alg.usable_size(off)) for off in live)
    for (a, usable), (b, _) in zip(spans, spans[1:]):
        assert a + usable <= b - 8, "a block's payload runs into the next header"
    assert spans[0][0] >= START and spans[-1][0] + spans[-1][1] <= START + alg.size
    assert all(off % 16 == 0 and alg.usable_size(off) >= size for off, size in live.items())
    assert all(raw[off : off + size] == bytes([byte[off]]) * size for off, size in live.items())


def test_free_memory_accounting_is_exact() -> None:
    _, alg = make()
    fresh, total = alg.free_memory, accounted(alg)
    offset = alg.allocate(100)
    assert offset is not None
    assert alg.free_memory == fresh - 112
    assert sum(span for _, span in alg.free_blocks()) == alg.free_memory
    assert accounted(alg) == total
    alg.deallocate(offset)
    assert alg.free_memory == fresh


def test_freeing_everything_in_any_order_coalesces_to_one_block() -> None:
    _, alg = make(1 << 20)
    fresh = list(alg.free_blocks())
    rng = random.Random(2)
    offsets = [alg.allocate(rng.randrange(0, 2000)) for _ in range(300)]
    rng.shuffle(offsets)
    for offset in offsets:
        assert offset is not None
        alg.deallocate(offset)
        alg.verify()
    assert list(alg.free_blocks()) == fresh
    assert alg.all_memory_deallocated()


def test_good_fit_reuses_a_freed_block_of_the_same_list() -> None:
    _, alg = make()
    first = alg.allocate(200)
    guard = alg.allocate(16)
    assert first is not None and guard is not None
    alg.deallocate(first)
    assert alg.allocate(200) == first


def test_failure_returns_none_and_changes_nothing() -> None:
    raw, alg = make(4096)
    before = bytes(raw)
    assert alg.allocate(1 << 20) is None
    assert alg.allocate_aligned(1 << 20, 256) is None
    assert bytes(raw) == before


# -- invalid pointers ---------------------------------------------------------------------
def _invalid_offsets(alg: SegregatedFit, live: int, freed: int, merged: int) -> list[int]:
    end = START + alg.size
    return [0, 8, START, START + 16, live + 8, live + 16, live - 16, freed, merged, end,
            end + 4096, 10**12, -16]


def test_deallocate_of_a_non_block_raises_and_leaves_the_bytes() -> None:
    raw, alg = make()
    a, b, c, d = (alg.allocate(64) for _ in range(4))
    assert a is not None and b is not None and c is not None and d is not None
    fill(raw, b, 64, 0)
    alg.deallocate(a)
    alg.deallocate(b)  # merges into a: b's header is now inside a free block
    for offset in _invalid_offsets(alg, c, a, b):
        before = bytes(raw)
        with pytest.raises(InvalidPointer):
            alg.deallocate(offset)
        assert bytes(raw) == before, f"deallocate({offset}) changed the segment"
        with pytest.raises(InvalidPointer):
            alg.usable_size(offset)
    alg.verify()


def test_double_free_is_detected_after_the_memory_is_reused() -> None:
    raw, alg = make()
    a, b, _ = (alg.allocate(48) for _ in range(3))
    assert a is not None and b is not None
    alg.deallocate(a)
    alg.deallocate(b)
    whole = alg.allocate(48 + 8 + 48)  # takes a and b's merged block
    assert whole == a
    before = bytes(raw)
    with pytest.raises(InvalidPointer):
        alg.deallocate(b)
    assert bytes(raw) == before


# -- damage -------------------------------------------------------------------------------
@pytest.mark.parametrize("garbage", [bytes(4096), bytes(range(256)) * 16, b"\xff" * 4096])
def test_attach_to_garbage_raises_segment_corrupt(garbage: bytes) -> None:
    with pytest.raises(SegmentCorrupt):
        SegregatedFit.attach(memoryview(bytearray(garbage)), START)


def test_attach_to_a_byte_copy_sees_the_same_state() -> None:
    raw, alg = make()
    kept = [alg.allocate(n) for n in (10, 300, 5000)]
    alg.deallocate(kept[1])  # type: ignore[arg-type]
    copy = SegregatedFit.attach(memoryview(bytearray(raw)), START)
    copy.verify()
    assert list(copy.free_blocks()) == list(alg.free_blocks())
    assert list(copy.allocated_blocks()) == list(alg.allocated_blocks())


def _list_of_free_blocks(alg: SegregatedFit) -> list[int]:
    """Three free 64-byte blocks in one list (live blocks between them)."""
    offsets = [alg.allocate(56) for _ in range(6)]
    for offset in offsets[::2]:
        alg.deallocate(offset)  # type: ignore[arg-type]
    return [(offset >> 3) - 1 for offset in offsets[::2]]  # type: ignore[operator]


@pytest.mark.parametrize("target", ["self", "head", "middle"])
def test_a_planted_cycle_gives_segment_corrupt_not_a_hang(target: str) -> None:
    raw, alg = make()
    blocks = _list_of_free_blocks(alg)
    words = memoryview(raw).cast("Q")
    head = words[alg.heads + sf.list_index(64)]
    last = blocks[0]  # pushed first, so last in the list
    words[last + sf.LAYOUT.NEXT] = {"self": last, "head": head, "middle": blocks[1]}[target]
    with pytest.raises(SegmentCorrupt):
        alg.verify()
    assert not alg.check_sanity()


def test_a_broken_chain_gives_segment_corrupt() -> None:
    raw, alg = make()
    offset = alg.allocate(100)
    assert offset is not None
    words = memoryview(raw).cast("Q")
    for bad in (0, 16, 1 << 40, words[(offset >> 3) - 1] | sf.LAYOUT.FREE_BIT):
        saved = words[(offset >> 3) - 1]
        words[(offset >> 3) - 1] = bad
        with pytest.raises(SegmentCorrupt):
            alg.verify()
        words[(offset >> 3) - 1] = saved
    alg.verify()


def test_a_link_out_of_the_buffer_gives_segment_corrupt_on_allocate() -> None:
    raw, alg = make()
    words = memoryview(raw).cast("Q")
    listed = alg.allocate(100)
    assert listed is not None and alg.allocate(16) is not None
    alg.deallocate(listed)
    h = (listed >> 3) - 1
    assert words[alg.heads + sf.list_index(words[h] & -sf.LAYOUT.ALIGN)] == h
    words[h + sf.LAYOUT.NEXT] = 1 << 40
    with pytest.raises(SegmentCorrupt):
        alg.allocate(100)


def test_a_damaged_top_word_gives_segment_corrupt() -> None:
    raw, alg = make()
    live = alg.allocate(100)
    assert live is not None
    words = memoryview(raw).cast("Q")
    top_word = alg.top_word
    top = words[top_word]
    for bad in ((live >> 3) - 1, top + 2, 1 << 40):  # a live block, inside the wilderness, out
        words[top_word] = bad
        with pytest.raises(SegmentCorrupt):
            alg.verify()
        before = bytes(raw)
        with pytest.raises(SegmentCorrupt):
            alg.allocate(100)
        assert bytes(raw) == before
        words[top_word] = top
    alg.verify()


# -- the wilderness -------------------------------------------------------------------------
def _listed(alg: SegregatedFit) -> int:
    """How many free blocks the lists hold (a walk of every list)."""
    words = alg.words
    count = 0
    for index in range(alg.rows * sf.LAYOUT.SL_COUNT):
        h = words[alg.heads + index]
        while h:
            count += 1
            h = words[h + sf.LAYOUT.NEXT]
    return count


def test_the_wilderness_is_in_no_list_and_serves_only_what_the_lists_cannot() -> None:
    _, alg = make()
    assert _listed(alg) == 0 and len(list(alg.free_blocks())) == 1
    a, guard = alg.allocate(200), alg.allocate(16)
    assert a is not None and guard is not None and a < guard
    assert _listed(alg) == 0, "both came off the wilderness's front"
    alg.deallocate(a)
    assert _listed(alg) == 1
    assert alg.allocate(100) == a, "a listed block that fits comes before the wilderness"
    alg.verify()


def test_freeing_the_block_before_the_wilderness_merges_into_it() -> None:
    _, alg = make()
    fresh = list(alg.free_blocks())
    a, b = alg.allocate(100), alg.allocate(300)
    assert a is not None and b is not None
    alg.deallocate(a)
    alg.deallocate(b)  # merges with a (listed, so unlinked) and the wilderness
    assert list(alg.free_blocks()) == fresh and _listed(alg) == 0
    alg.verify()


def test_growing_into_the_wilderness_keeps_it_out_of_the_lists() -> None:
    raw, alg = make()
    a = alg.allocate(100)
    assert a is not None
    fill(raw, a, 100, 5)
    free = alg.free_memory
    got, received = alg.allocation_command(Command.EXPAND_FWD, 5000, 5000, a)
    assert got == a and received >= 5000 and alg.free_memory == free - (received - 104)
    assert _listed(alg) == 0 and raw[a : a + 100] == bytes([5]) * 100
    alg.verify()
    whole = alg.free_memory + received
    got, received = alg.allocation_command(Command.EXPAND_FWD, 100, whole, a)
    assert (got, received) == (a, whole), "the wilderness was taken whole"
    assert alg.free_memory == 0 and alg.allocate(0) is None
    alg.verify()


# -- region size --------------------------------------------------------------------------
def test_grow_and_shrink_to_fit_round_trip() -> None:
    raw, alg = make(8192, spare=1 << 16)
    kept = alg.allocate(1000)
    assert kept is not None
    fill(raw, kept, 1000, 7)
    free, size = alg.free_memory, alg.size
    alg.grow(4096)
    assert alg.size == size + 4096 and alg.free_memory == free + 4096
    assert len(list(alg.free_blocks())) == 1, "the new tail merges with the free last block"
    alg.verify()
    shrunk = alg.shrink_to_fit()
    assert shrunk == alg.size and shrunk <= kept - START + 1000 + 16
    assert alg.free_memory == 0
    alg.verify()
    alg.grow(size - shrunk)
    assert alg.free_memory == free
    assert raw[kept : kept + 1000] == bytes([7]) * 1000
    alg.verify()


def test_a_segment_grown_past_its_table_uses_the_catch_all_list() -> None:
    raw, alg = make(1024, spare=1 << 22)
    assert alg.rows == 1
    alg.grow(1 << 22)
    alg.verify()
    big = alg.allocate(1 << 21)
    small = alg.allocate(5000)
    assert big is not None and small is not None
    alg.verify()
    alg.deallocate(big)
    alg.deallocate(small)
    assert len(list(alg.free_blocks())) == 1
    alg.verify()


# -- allocation_command ---------------------------------------------------------------------
def test_expand_forward_into_a_free_successor() -> None:
    raw, alg = make()
    a = alg.allocate(100)
    b = alg.allocate(400)
    guard = alg.allocate(16)
    assert a is not None and b is not None and guard is not None
    fill(raw, a, 100, 3)
    alg.deallocate(b)
    free = alg.free_memory
    got, received = alg.allocation_command(Command.EXPAND_FWD, 300, 450, a)
    assert got == a and received >= 450 and alg.usable_size(a) == received
    assert alg.free_memory == free - (received - 104), "exactly the growth left the free lists"
    assert raw[a : a + 100] == bytes([3]) * 100
    alg.verify()
    got, received = alg.allocation_command(Command.EXPAND_FWD, 5000, 5000, a)
    assert (got, received) == (None, 0)


def test_expand_backward_into_a_free_predecessor_covers_the_old_block() -> None:
    raw, alg = make()
    a, b, guard = alg.allocate(400), alg.allocate(100), alg.allocate(16)
    assert a is not None and b is not None and guard is not None
    alg.deallocate(a)
    got, received = alg.allocation_command(Command.EXPAND_BWD, 300, 300, b)
    assert got is not None and got < b < got + received and received >= 300
    assert got > a, "only the needed part of the predecessor is taken"
    alg.verify()
    with pytest.raises(InvalidPointer):
        alg.deallocate(b)  # the old header is payload now
    alg.deallocate(got)
    alg.deallocate(guard)
    assert alg.all_memory_deallocated()


def test_shrink_in_place_and_try_shrink() -> None:
    _, alg = make()
    a = alg.allocate(1000)
    assert a is not None
    free = alg.free_memory
    got, received = alg.allocation_command(Command.SHRINK_IN_PLACE, 1000, 200, a)
    assert got == a and 200 <= received <= 1000 and alg.free_memory > free
    assert alg.allocation_command(Command.SHRINK_IN_PLACE, 1000, 2000, a) == (None, 0)
    assert alg.allocation_command(Command.TRY_SHRINK_IN_PLACE, received, received, a) == (
        a,
        received,
    )
    alg.verify()


def test_allocate_new_with_zero_memory_and_fallback() -> None:
    raw, alg = make()
    a = alg.allocate(500)
    assert a is not None
    fill(raw, a, 500, 9)
    alg.deallocate(a)
    got, received = alg.allocation_command(Command.ALLOCATE_NEW | Command.ZERO_MEMORY, 100, 500, None)
    assert got is not None and received >= 500 and raw[got : got + received] == bytes(received)
    guard = alg.allocate(16)
    assert guard is not None
    got2, received2 = alg.allocation_command(
        Command.EXPAND_FWD | Command.ALLOCATE_NEW, 2000, 2000, got
    )
    assert got2 not in (None, got) and received2 >= 2000
    with pytest.raises(ValueError):
        alg.allocation_command(Command.EXPAND_FWD, 10, 10, None)


@pytest.mark.parametrize("alignment", [32, 64, 128, 256, 4096])
def test_allocate_aligned_returns_the_front_gap_and_tail(alignment: int) -> None:
    _, alg = make(1 << 18)
    fresh = alg.free_memory
    offsets = []
    for size in (1, 100, 3 * 128 - 8, 5000):
        offset = alg.allocate_aligned(size, alignment)
        assert offset is not None and offset % alignment == 0
        assert alg.usable_size(offset) < sf.span_for(size) + 32, "the tail went back"
        offsets.append(offset)
        alg.verify()
    for offset in offsets:
        alg.deallocate(offset)
    assert alg.free_memory == fresh and len(list(alg.free_blocks())) == 1


def test_registration() -> None:
    from segalloc import plugins

    assert plugins().algorithm("segregated_fit") is SegregatedFit


# -- model-based state machine --------------------------------------------------------------
class TlsfMachine(RuleBasedStateMachine):
    """Random operations against a model {offset: (size, fill byte)}, checked after each."""

    @initialize(size=st.sampled_from([1024, 8192, 65536]))
    def create(self, size: int) -> None:
        self.raw, self.alg = make(size, spare=1 << 16)
        self.model: dict[int, tuple[int, int]] = {}
        self.total = accounted(self.alg)
        self.tag = 0

    def _add(self, offset: int | None, size: int) -> None:
        if offset is None:
            return
        assert offset % 16 == 0 and offset not in self.model
        self.tag = self.tag % 250 + 1
        fill(self.raw, offset, size, self.tag)
        self.model[offset] = (size, self.tag)

    @rule(size=st.integers(0, 3000))
    def allocate(self, size: int) -> None:
        self._add(self.alg.allocate(size), size)

    @rule(size=st.integers(0, 600), alignment=st.sampled_from([32, 64, 256, 1024]))
    def allocate_aligned(self, size: int, alignment: int) -> None:
        offset = self.alg.allocate_aligned(size, alignment)
        assert offset is None or offset % alignment == 0
        self._add(offset, size)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        offset = data.draw(st.sampled_from(sorted(self.model)))
        self.alg.deallocate(offset)
        del self.model[offset]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), new_size=st.integers(0, 3000), backwards=st.booleans())
    def resize_in_place(self, data: st.DataObject, new_size: int, backwards: bool) -> None:
        offset = data.draw(st.sampled_from(sorted(self.model)))
        size, tag = self.model[offset]
        if new_size <= size:
            got, received = self.alg.allocation_command(
                Command.SHRINK_IN_PLACE, size, new_size, offset)
            if got is not None:
                assert got == offset and new_size <= received <= size
                self.model[offset] = (new_size, tag)
            return
        command = Command.EXPAND_FWD | (Command.EXPAND_BWD if backwards else 0)
        got, received = self.alg.allocation_command(command, new_size, new_size, offset)
        if got is None:
            return
        assert got <= offset < got + received and received >= new_size
        self.raw[got : got + size] = self.raw[offset : offset + size]  # the manager's move
        del self.model[offset]
        fill(self.raw, got + size, new_size - size, tag)
        self.model[got] = (new_size, tag)

    @rule(data=st.data())
    def bad_free(self, data: st.DataObject) -> None:
        # o + 16 of a block holding 16 bytes or more: the word before it is the caller's
        # (a byte repeated 8 times, never a plausible header)
        offset = data.draw(st.sampled_from([0, 8, START, START + self.alg.size]
                                           + [o + 16 for o, (s, _) in self.model.items() if s >= 16]))
        if offset in self.model:
            return
        before = bytes(self.raw)
        with pytest.raises(InvalidPointer):
            self.alg.deallocate(offset)
        assert bytes(self.raw) == before

    @rule(extra=st.integers(0, 4096))
    def grow(self, extra: int) -> None:
        if START + self.alg.size + extra <= len(self.raw):
            self.alg.grow(extra)
            self.total = accounted(self.alg)

    @rule()
    def shrink_to_fit(self) -> None:
        self.alg.shrink_to_fit()
        self.total = accounted(self.alg)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "alg"):
            return
        self.alg.verify()
        assert sorted(o for o, _ in self.alg.allocated_blocks()) == sorted(self.model)
        assert accounted(self.alg) == self.total
        assert sum(span for _, span in self.alg.free_blocks()) == self.alg.free_memory
        for offset, (size, tag) in self.model.items():
            assert self.alg.usable_size(offset) >= size
            assert self.raw[offset : offset + size] == bytes([tag]) * size


TestTlsfMachine = TlsfMachine.TestCase
