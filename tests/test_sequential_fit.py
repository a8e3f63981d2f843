"""Tests of ``segalloc.algorithms.sequential_fit``: Boost's figures, accounting, coalescing, refusal of
bad pointers without change, corruption handling, region growth, and a random state machine."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from segalloc.algorithms import sequential_fit
from segalloc.algorithms.sequential_fit import LAYOUT, SequentialFit
from segalloc.errors import InvalidPointer, SegmentCorrupt
from segalloc.interfaces import Command, MemoryAlgorithm

START = 128  # where the segment header ends, as in a real segment
HEADER_SIZE = LAYOUT.HEADER_SIZE


def make(size: int = 65536, start: int = START, spare: int = 0) -> tuple[SequentialFit, bytearray]:
    raw = bytearray(start + size + spare)
    return SequentialFit.format(memoryview(raw), start, size), raw


def take(algo: SequentialFit, size: int) -> int:
    """allocate, for tests where the region surely has room."""
    offset = algo.allocate(size)
    assert offset is not None
    return offset


def accounting_holds(algo: SequentialFit, size: int) -> bool:
    """free memory + allocated block sizes (usable + header) == region - algorithm header."""
    allocated = sum(usable + algo.PAYLOAD_PER_ALLOCATION for _, usable in algo.allocated_blocks())
    return algo.free_memory + allocated == size - HEADER_SIZE


# -- identity and registration -----------------------------------------------------------------


def test_constants_match_boost_simple_seq_fit() -> None:
    assert SequentialFit.name == "sequential_fit"
    assert SequentialFit.layout_version == 1
    assert SequentialFit.ALIGNMENT == 16
    assert SequentialFit.PAYLOAD_PER_ALLOCATION == 16
    algo, _ = make(SequentialFit.MIN_SEGMENT_SIZE)
    assert algo.allocate(0) is not None


def test_plugin_registers_itself() -> None:
    registered: list[type[MemoryAlgorithm]] = []
    sequential_fit.segalloc_register_algorithms(register=registered.append)
    assert registered == [SequentialFit]
    names = {ep.name: ep.value for ep in entry_points(group="segalloc")}
    assert names["sequential_fit"] == "segalloc.algorithms.sequential_fit"


# -- Boost 1.74 figures ------------------------------------------------------------------------


def test_allocate_100_costs_a_128_byte_block() -> None:
    algo, _ = make()
    before = algo.free_memory
    offset = algo.allocate(100)
    assert offset is not None and offset % 16 == 0
    assert before - algo.free_memory == 128
    assert algo.usable_size(offset) == 112
    algo.deallocate(offset)
    assert algo.free_memory == before


def test_allocation_command_figures() -> None:
    algo, raw = make(10000 * 8)
    offset, received = algo.allocation_command(Command.ALLOCATE_NEW, 100 * 8, 1000 * 8, None)
    assert offset is not None and received == 8000
    raw[offset : offset + received] = b"\x5a" * received
    free_after_new = algo.free_memory

    same, received = algo.allocation_command(Command.EXPAND_FWD, 2 * 8000, 3 * 8000, offset)
    assert (same, received) == (offset, 24000)
    assert algo.free_memory == free_after_new - 16000
    assert raw[offset : offset + 8000] == b"\x5a" * 8000

    same, received = algo.allocation_command(Command.SHRINK_IN_PLACE, 4 * 8000, 2 * 8000, offset)
    assert (same, received) == (offset, 16000)
    assert algo.free_memory == free_after_new - 8000
    assert algo.usable_size(offset) == received
    assert raw[offset : offset + 8000] == b"\x5a" * 8000
    algo.verify()


def test_expand_bwd_alone_is_not_supported() -> None:
    algo, _ = make()
    offset = algo.allocate(64)
    assert algo.allocation_command(Command.EXPAND_BWD, 128, 128, offset) == (None, 0)
    new, received = algo.allocation_command(Command.EXPAND_BWD | Command.ALLOCATE_NEW, 128, 128, offset)
    assert new is not None and new != offset and received == 128


def test_expand_fwd_fails_when_the_successor_is_allocated() -> None:
    algo, _ = make()
    offset = take(algo, 64)
    algo.allocate(64)
    assert algo.allocation_command(Command.EXPAND_FWD, 256, 256, offset) == (None, 0)
    new, received = algo.allocation_command(Command.EXPAND_FWD | Command.ALLOCATE_NEW, 256, 256, offset)
    assert new not in (None, offset) and received == 256
    assert algo.usable_size(offset) == 64  # the old block is the caller's to free


def test_expand_fwd_keeps_a_block_already_big_enough() -> None:
    algo, _ = make()
    offset = algo.allocate(100)
    assert algo.allocation_command(Command.EXPAND_FWD, 112, 500, offset) == (offset, 112)


def test_allocate_new_falls_back_to_the_biggest_block_within_limit() -> None:
    algo, _ = make(1024)
    whole = algo.free_memory - 16
    offset, received = algo.allocation_command(Command.ALLOCATE_NEW, 100, 100_000, None)
    assert offset is not None and received == whole
    assert algo.allocation_command(Command.ALLOCATE_NEW, 10, 100_000, None) == (None, 0)


def test_shrink_that_cannot_happen() -> None:
    algo, raw = make()
    offset = take(algo, 100)
    before = bytes(raw)
    # preferred above the block, or limit below preferred: SHRINK fails, TRY keeps the block
    assert algo.allocation_command(Command.SHRINK_IN_PLACE, 500, 200, offset) == (None, 0)
    assert algo.allocation_command(Command.SHRINK_IN_PLACE, 16, 64, offset) == (None, 0)
    assert algo.allocation_command(Command.TRY_SHRINK_IN_PLACE, 500, 200, offset) == (offset, 112)
    assert bytes(raw) == before
    assert algo.allocation_command(Command.TRY_SHRINK_IN_PLACE, 112, 32, offset) == (offset, 32)
    assert algo.usable_size(offset) == 32
    algo.verify()


def test_zero_memory_zeroes_only_new_bytes() -> None:
    algo, raw = make()
    junk = algo.allocate(4000)
    assert junk is not None
    raw[junk : junk + 4000] = b"\xff" * 4000
    algo.deallocate(junk)
    offset, received = algo.allocation_command(Command.ALLOCATE_NEW | Command.ZERO_MEMORY, 64, 64, None)
    assert offset is not None and raw[offset : offset + received] == bytes(received)
    raw[offset : offset + received] = b"\x11" * received
    same, grown = algo.allocation_command(Command.EXPAND_FWD | Command.ZERO_MEMORY, 1000, 1000, offset)
    assert same == offset
    assert raw[offset : offset + received] == b"\x11" * received
    assert raw[offset + received : offset + grown] == bytes(grown - received)


# -- accounting, alignment, coalescing -----------------------------------------------------------


def test_blocks_do_not_overlap_and_are_aligned() -> None:
    algo, _ = make()
    offsets = [algo.allocate(size) for size in (0, 1, 15, 16, 17, 100, 1000, 3)]
    spans = sorted((o, o + algo.usable_size(o)) for o in offsets if o is not None)
    assert len(spans) == len(offsets)
    assert all(o % SequentialFit.ALIGNMENT == 0 for o, _ in spans)
    assert all(end + 16 <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False))
    assert accounting_holds(algo, 65536)


@pytest.mark.parametrize("alignment", [32, 64, 128, 256, 4096])
def test_allocate_aligned(alignment: int) -> None:
    algo, _ = make()
    algo.allocate(24)  # move the first free block off any large alignment
    offset = algo.allocate_aligned(100, alignment)
    assert offset is not None and offset % alignment == 0
    assert algo.usable_size(offset) >= 100
    algo.verify()
    assert accounting_holds(algo, 65536)
    # the unused front is a free block of its own
    assert any(blk + size == offset - 16 for blk, size in algo.free_blocks())


def test_free_in_any_order_coalesces_to_one_block() -> None:
    algo, _ = make()
    empty = list(algo.free_blocks())
    offsets = [algo.allocate(size) for size in range(0, 2000, 37)]
    assert not algo.all_memory_deallocated()
    for offset in offsets[1::2] + offsets[0::2]:
        assert offset is not None
        algo.deallocate(offset)
        algo.verify()
    assert algo.all_memory_deallocated()
    assert list(algo.free_blocks()) == empty and len(empty) == 1


def test_zero_free_memory_keeps_live_data() -> None:
    algo, raw = make(4096)
    a, b = algo.allocate(100), algo.allocate(100)
    assert a is not None and b is not None
    raw[a : a + 100] = b"\xaa" * 100
    raw[b : b + 100] = b"\xbb" * 100
    algo.deallocate(a)
    algo.zero_free_memory()
    assert raw[a : a + 100] == bytes(100)
    assert raw[b : b + 100] == b"\xbb" * 100
    algo.verify()


# -- bad pointers: refused, nothing changed --------------------------------------------------------


#: how each bad offset is made from a live block and a freed one (both of 200 bytes)
BAD_OFFSETS: dict[str, Callable[[int, int], int]] = {
    "double free": lambda live, freed: freed,
    "interior": lambda live, freed: live + 16,
    "misaligned": lambda live, freed: live + 8,
    "inside a free block": lambda live, freed: freed + 64,
    "before the region": lambda live, freed: START,
    "past the region": lambda live, freed: START + 65536 + 16,
    "negative": lambda live, freed: -16,
}


@pytest.mark.parametrize("case", sorted(BAD_OFFSETS))
def test_bad_pointer_raises_and_changes_nothing(case: str) -> None:
    algo, raw = make()
    live, freed = take(algo, 200), take(algo, 200)
    take(algo, 200)
    algo.deallocate(freed)
    offset = BAD_OFFSETS[case](live, freed)
    before = bytes(raw)
    with pytest.raises(InvalidPointer):
        algo.deallocate(offset)
    with pytest.raises(InvalidPointer):
        algo.usable_size(offset)
    with pytest.raises(InvalidPointer):
        algo.allocation_command(Command.EXPAND_FWD, 1000, 1000, offset)
    assert bytes(raw) == before


def test_double_free_after_the_block_was_merged_and_reused() -> None:
    algo, raw = make()
    a = algo.allocate(100)
    b = algo.allocate(100)
    assert a is not None and b is not None
    algo.deallocate(a)
    algo.deallocate(b)  # b merges into a's free block: its header is gone
    big = algo.allocate(400)  # covers where b's header was
    assert big == a
    before = bytes(raw)
    with pytest.raises(InvalidPointer):
        algo.deallocate(b)
    assert bytes(raw) == before


def test_stale_offset_from_an_earlier_format_is_refused() -> None:
    algo, raw = make()
    a = algo.allocate(100)
    algo.allocate(100)
    assert a is not None
    again = SequentialFit.format(memoryview(raw), START, 65536)
    holder = again.allocate(1000)  # its payload still holds the old second header
    assert holder == a
    before = bytes(raw)
    with pytest.raises(InvalidPointer):
        again.deallocate(a + 128)
    assert bytes(raw) == before


def test_formats_of_the_same_bytes_keep_the_mark_odd_and_below_2_63() -> None:
    """Each re-format steps the mark; it must stay a word the signed view reads as is, or
    allocating would have to store a negative word."""
    algo, raw = make()
    mark_word = (START >> 3) + LAYOUT.HDR_MARK
    marks = []
    for _ in range(20):
        algo = SequentialFit.format(memoryview(raw), START, 65536)
        marks.append(memoryview(raw).cast("Q")[mark_word])
        offset = take(algo, 100)
        algo.deallocate(offset)
    assert len(set(marks)) == len(marks)
    assert all(mark % 2 == 1 and mark < 2**63 for mark in marks)


def test_huge_offsets_and_sizes_are_refused_not_overflowed() -> None:
    algo, raw = make()
    take(algo, 100)
    before = bytes(raw)
    for offset in (2**63, 2**64 + START + 64, -(2**63), -(2**70)):
        with pytest.raises(InvalidPointer):
            algo.deallocate(offset)
    assert algo.allocate(2**70) is None
    assert algo.allocate_aligned(2**70, 64) is None
    assert algo.allocation_command(Command.ALLOCATE_NEW, 2**70, 2**71, None) == (None, 0)
    assert bytes(raw) == before


def test_non_int_offset() -> None:
    algo, _ = make()
    with pytest.raises(InvalidPointer):
        algo.deallocate(1.5)  # type: ignore[arg-type]


# -- format, attach, corruption ----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 16, SequentialFit.MIN_SEGMENT_SIZE - 1])
def test_region_too_small_for_format(size: int) -> None:
    with pytest.raises(ValueError, match="size"):
        SequentialFit.format(memoryview(bytearray(START + 64)), START, size)


def test_region_larger_than_the_buffer() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        SequentialFit.format(memoryview(bytearray(1000)), START, 1000)


def test_minimum_region_holds_one_empty_allocation() -> None:
    algo, _ = make(SequentialFit.MIN_SEGMENT_SIZE)
    assert algo.allocate(1) is None
    offset = algo.allocate(0)
    assert offset is not None and algo.usable_size(offset) == 0


@pytest.mark.parametrize("fill", [b"\x00", b"\xff", b"seqfit01"])
def test_attach_on_garbage(fill: bytes) -> None:
    raw = bytearray(fill * (70000 // len(fill)))
    with pytest.raises(SegmentCorrupt):
        SequentialFit.attach(memoryview(raw), START)


def test_attach_refuses_a_header_with_the_right_magic_and_bad_fields() -> None:
    algo, raw = make()
    words = memoryview(raw).cast("Q")
    for field, value in [(2, 8), (3, 24), (4, 2)]:  # free head, allocated bytes, mark
        saved = words[(START >> 3) + field]
        words[(START >> 3) + field] = value
        with pytest.raises(SegmentCorrupt):
            SequentialFit.attach(memoryview(raw), START)
        words[(START >> 3) + field] = saved
    SequentialFit.attach(memoryview(raw), START).verify()


def test_attach_refuses_a_size_past_the_buffer() -> None:
    algo, raw = make()
    SequentialFit.attach(memoryview(raw), START)
    with pytest.raises(SegmentCorrupt):
        SequentialFit.attach(memoryview(raw[:30000]), START)


def test_attach_to_a_byte_copy_sees_the_same_blocks() -> None:
    algo, raw = make()
    keep = [algo.allocate(size) for size in (10, 200, 3000)]
    assert keep[1] is not None
    algo.deallocate(keep[1])
    copy = SequentialFit.attach(memoryview(bytearray(raw)), START)
    assert list(copy.allocated_blocks()) == list(algo.allocated_blocks())
    assert list(copy.free_blocks()) == list(algo.free_blocks())
    assert copy.free_memory == algo.free_memory and copy.size == algo.size
    copy.verify()


def test_cycle_in_the_free_list_is_caught() -> None:
    algo, raw = make()
    offsets = [algo.allocate(64) for _ in range(6)]
    for offset in offsets[::2]:
        assert offset is not None
        algo.deallocate(offset)
    free = [blk for blk, _ in algo.free_blocks()]
    assert len(free) == 4
    words = memoryview(raw).cast("Q")
    words[(free[-1] >> 3) + 1] = free[0]  # the last free block links back to the first
    with pytest.raises(SegmentCorrupt):
        algo.verify()
    assert not algo.check_sanity()
    with pytest.raises(SegmentCorrupt):
        algo.allocate(100_000)
    with pytest.raises(SegmentCorrupt):
        list(algo.free_blocks())


@pytest.mark.parametrize("word, value", [(0, 0), (0, 24), (1, 1), (0, 1 << 40)])
def test_damaged_block_header_is_caught_by_verify(word: int, value: int) -> None:
    algo, raw = make()
    offset = algo.allocate(64)
    algo.allocate(64)
    assert offset is not None
    memoryview(raw).cast("Q")[((offset - 16) >> 3) + word] = value
    with pytest.raises(SegmentCorrupt):
        algo.verify()


def test_free_link_out_of_the_buffer() -> None:
    algo, raw = make()
    algo.allocate(64)
    free_blk = next(iter(algo.free_blocks()))[0]
    memoryview(raw).cast("Q")[(free_blk >> 3)] = 8  # too small for anything
    memoryview(raw).cast("Q")[(free_blk >> 3) + 1] = 1 << 40
    with pytest.raises(SegmentCorrupt):
        algo.allocate(64)


@pytest.mark.parametrize("request_size, target", [
    (500, "past the buffer"), (500, "the last word"), (500, "negative"), (32, "negative")])
def test_a_free_link_no_header_can_lie_at_is_refused_unchanged(request_size: int,
                                                              target: str) -> None:
    """The compiled walks read headers without bounds checks, relying on each link being
    checked against the region's end first: a walk that would follow such a link (500 bytes:
    the first free block is too small) must refuse it, and so must an allocation that would
    copy a negative one into a split block (32 bytes), and nothing may change."""
    algo, raw = make(1024)  # the region ends where the buffer does
    first = take(algo, 64)
    take(algo, 64)
    algo.deallocate(first)
    head = next(iter(algo.free_blocks()))[0]
    link = {"past the buffer": len(raw) + 4096, "the last word": len(raw) - 8,
            "negative": 2**63 + 16}[target]
    memoryview(raw).cast("Q")[(head >> 3) + 1] = link
    before = bytes(raw)
    with pytest.raises(SegmentCorrupt):
        algo.allocate(request_size)
    assert bytes(raw) == before


def test_a_buffer_without_room_for_the_header_is_refused() -> None:
    with pytest.raises(SegmentCorrupt):
        SequentialFit(memoryview(bytearray(START + 40)), START)


# -- growing and shrinking the region ------------------------------------------------------------


def test_grow_then_shrink_to_fit_round_trip() -> None:
    algo, raw = make(1000, spare=500)
    offset = algo.allocate(300)
    assert offset is not None
    raw[offset : offset + 300] = b"\x42" * 300
    free_before = algo.free_memory
    algo.grow(500)
    assert algo.size == 1500 and algo.free_memory == free_before + 500
    algo.verify()
    assert accounting_holds(algo, 1500)
    new_size = algo.shrink_to_fit()
    assert new_size == algo.size == offset + algo.usable_size(offset) - START
    assert algo.free_memory == 0
    assert raw[offset : offset + 300] == b"\x42" * 300
    algo.verify()
    algo.grow(1500 - new_size)
    assert algo.size == 1500 and accounting_holds(algo, 1500)
    assert algo.allocate(400) is not None


def test_shrink_to_fit_keeps_an_allocated_tail() -> None:
    algo, _ = make(1024)
    offset, received = algo.allocation_command(Command.ALLOCATE_NEW, 1, 10_000, None)
    assert offset is not None
    assert algo.shrink_to_fit() == 1024


def test_shrink_to_fit_of_an_empty_region_gives_the_minimum() -> None:
    algo, _ = make()
    assert algo.shrink_to_fit() == SequentialFit.MIN_SEGMENT_SIZE
    algo.verify()
    assert algo.all_memory_deallocated() and algo.allocate(0) is not None


def test_grow_refuses_what_the_buffer_lacks() -> None:
    algo, raw = make(1000)
    before = bytes(raw)
    with pytest.raises(ValueError, match="extra"):
        algo.grow(16)
    assert bytes(raw) == before


# -- random operations against a model ---------------------------------------------------------


class SequentialFitMachine(RuleBasedStateMachine):
    """Random allocate / free / realloc, each block filled with its own byte and checked."""

    SIZE = 8192

    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.algo, self.raw = make(self.SIZE)
        self.live: dict[int, tuple[int, int]] = {}  # offset -> (requested size, fill byte)
        self.serial = 0

    def _add(self, offset: int | None, size: int) -> int | None:
        if offset is None:
            return None
        assert offset % 16 == 0 and offset not in self.live
        assert self.algo.usable_size(offset) >= size
        self.serial = self.serial % 255 + 1
        self.raw[offset : offset + size] = bytes([self.serial]) * size
        self.live[offset] = (size, self.serial)
        return offset

    @rule(target=blocks, size=st.integers(0, 1500))
    def allocate(self, size: int) -> int | None:
        return self._add(self.algo.allocate(size), size)

    @rule(target=blocks, size=st.integers(0, 600), shift=st.integers(5, 10))
    def allocate_aligned(self, size: int, shift: int) -> int | None:
        offset = self.algo.allocate_aligned(size, 1 << shift)
        assert offset is None or offset % (1 << shift) == 0
        return self._add(offset, size)

    @rule(offset=consumes(blocks))
    def deallocate(self, offset: int | None) -> None:
        if offset is None:
            return
        self.algo.deallocate(offset)
        del self.live[offset]

    @rule(target=blocks, offset=consumes(blocks), new_size=st.integers(0, 2000))
    def reallocate(self, offset: int | None, new_size: int) -> int | None:
        """The replay harness's realloc: shrink or expand in place, else move."""
        if offset is None:
            return None
        old_size, fill = self.live[offset]
        if new_size <= old_size:
            same, _ = self.algo.allocation_command(Command.SHRINK_IN_PLACE, old_size, new_size, offset)
            assert same in (None, offset)
        else:
            same, received = self.algo.allocation_command(Command.EXPAND_FWD, new_size, new_size, offset)
            assert self.raw[offset : offset + old_size] == bytes([fill]) * old_size
            if same is None:
                moved = self.algo.allocate(new_size)
                if moved is None:
                    return offset
                self.raw[moved : moved + old_size] = self.raw[offset : offset + old_size]
                self.algo.deallocate(offset)
                del self.live[offset]
                self.live[moved] = (old_size, fill)
                offset = moved
            self.raw[offset : offset + new_size] = bytes([fill]) * new_size
        self.live[offset] = (new_size, fill)
        assert self.algo.usable_size(offset) >= new_size
        return offset

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def bad_free_changes_nothing(self, data: st.DataObject) -> None:
        offset = data.draw(st.sampled_from(sorted(self.live)))
        bad = offset + data.draw(st.sampled_from([8, 16, 32, self.algo.usable_size(offset) + 16]))
        if bad in self.live:
            return
        before = bytes(self.raw)
        with pytest.raises(InvalidPointer):
            self.algo.deallocate(bad)
        assert bytes(self.raw) == before

    @invariant()
    def consistent(self) -> None:
        self.algo.verify()
        blocks = list(self.algo.allocated_blocks())
        assert sorted(self.live) == [offset for offset, _ in blocks]
        spans = [(offset, offset + usable) for offset, usable in blocks]
        assert all(end + 16 <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False))
        for offset, (size, fill) in self.live.items():
            assert self.raw[offset : offset + size] == bytes([fill]) * size
        assert accounting_holds(self.algo, self.SIZE)
        assert self.algo.all_memory_deallocated() == (not self.live)


SequentialFitMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40)
test_sequential_fit_machine = SequentialFitMachine.TestCase
