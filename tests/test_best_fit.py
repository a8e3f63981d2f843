"""best_fit: Boost's rbtree_best_fit figures, best-fit choices, tags, errors, a model machine.

The algorithm is driven directly on a bytearray (region at 128, after the segment header), so
every test sees exactly the words it asserts on. Where a figure differs from Boost's
(``../shared/reference/boost-1.74-figures.md``) the test says why.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from segalloc import plugins
from segalloc.algorithms.best_fit import LAYOUT, MIN_SEGMENT_SIZE, BestFit
from segalloc.errors import InvalidPointer, SegmentCorrupt
from segalloc.interfaces import Command

MIN_BLOCK = LAYOUT.MIN_BLOCK

START = 128
SMALL = 65536  # a segment with 8 exact bins: most sizes go to the tries
LARGE = 4 << 20  # a segment with 1024 exact bins: sizes below 16 KiB go to bins


def fresh(total: int = SMALL) -> tuple[bytearray, BestFit]:
    buf = bytearray(total)
    return buf, BestFit.format(memoryview(buf), START, total - START)


def block_bytes(alg: BestFit, offset: int) -> int:
    return alg.usable_size(offset) + BestFit.PAYLOAD_PER_ALLOCATION


# -- Boost's figures -------------------------------------------------------------------------


def test_registered_under_its_name() -> None:
    assert plugins().algorithms["best_fit"] is BestFit
    assert (BestFit.name, BestFit.layout_version) == ("best_fit", 1)
    assert (BestFit.ALIGNMENT, BestFit.PAYLOAD_PER_ALLOCATION) == (16, 8)


def test_free_memory_of_a_new_64k_segment() -> None:
    """Boost: 65312. The difference, 112 bytes, is the larger header: 24 words of bins and
    trie roots before the first block (Boost's tree header is smaller) plus the end marker."""
    _, alg = fresh(65536)
    assert alg._first * 8 - START == 192
    assert alg.free_memory == 65536 - START - 192 - 16 == 65200


def test_allocate_100_costs_a_112_byte_block() -> None:
    _, alg = fresh()
    before = alg.free_memory
    offset = alg.allocate(100)
    assert offset is not None and offset % 16 == 0
    assert before - alg.free_memory == 112  # Boost: 65312 -> 65200
    assert alg.usable_size(offset) == 104
    alg.deallocate(offset)
    assert alg.free_memory == before


@pytest.mark.parametrize(("size", "block"), [(0, 48), (40, 48), (41, 64), (56, 64), (57, 80)])
def test_block_sizes_follow_boost_units(size: int, block: int) -> None:
    _, alg = fresh()
    offset = alg.allocate(size)
    assert offset is not None and block_bytes(alg, offset) == block


def test_scenario_6_received_sizes() -> None:
    """Boost 1.74 on 10000*8 bytes: 1001, 3003 and 2003 elements of 8 bytes."""
    _, alg = fresh(10000 * 8)
    offset, received = alg.allocation_command(Command.ALLOCATE_NEW, 100 * 8, 1000 * 8, None)
    assert offset is not None and received == 1001 * 8
    memoryview(alg._buf)[offset: offset + received] = bytes(range(256)) * (received // 256) \
        + bytes(received % 256)
    data = bytes(alg._buf[offset: offset + received])
    after_allocation = alg.free_memory
    got, expanded = alg.allocation_command(Command.EXPAND_FWD, 2 * received, 3 * received, offset)
    assert got == offset and expanded == 3003 * 8
    assert alg.free_memory < after_allocation
    after_expansion = alg.free_memory
    got, shrunk = alg.allocation_command(
        Command.SHRINK_IN_PLACE, 2 * 2 * received, 2 * received, offset)
    assert got == offset and shrunk == 2003 * 8
    assert 2 * received <= shrunk <= 4 * received
    assert alg.free_memory > after_expansion
    assert bytes(alg._buf[offset: offset + received]) == data
    alg.verify()


def test_allocate_new_reports_what_it_gave_when_less_than_preferred() -> None:
    """Boost may report ``preferred`` as received; here it is always the usable size."""
    _, alg = fresh(4096)
    offset, received = alg.allocation_command(Command.ALLOCATE_NEW, 100, 1 << 20, None)
    assert offset is not None and received == alg.usable_size(offset) < 1 << 20
    assert alg.free_memory == 0
    assert alg.allocation_command(Command.ALLOCATE_NEW, 100, 200, None) == (None, 0)


# -- best fit ----------------------------------------------------------------------------------


def _holes(alg: BestFit, sizes: list[int]) -> list[int]:
    """Free blocks of the given sizes, separated by live guards; returns their offsets."""
    holes = []
    for size in sizes:
        offset = alg.allocate(size)
        assert offset is not None and alg.allocate(0) is not None
        holes.append(offset)
    for offset in holes:
        alg.deallocate(offset)
    return holes


@pytest.mark.parametrize(("total", "scale"), [(SMALL, 1), (LARGE, 1), (LARGE, 40)])
def test_takes_the_smallest_block_that_fits(total: int, scale: int) -> None:
    _, alg = fresh(total)
    holes = _holes(alg, [s * scale for s in (900, 300, 500, 200, 300)])
    assert alg.allocate(250 * scale) == holes[1], "the smallest fit, the older of two equals"
    assert alg.allocate(250 * scale) == holes[4]
    assert alg.allocate(400 * scale) == holes[2]
    assert alg.allocate(100 * scale) == holes[3]
    alg.verify()


def test_allocates_from_the_front_and_keeps_the_rest_free() -> None:
    _, alg = fresh(LARGE)
    (hole,) = _holes(alg, [1000])
    offset = alg.allocate(100)
    assert offset == hole
    assert (hole - 16 + 112, 1008 - 112) in set(alg.free_blocks())
    alg.verify()


# -- boundary tags and coalescing --------------------------------------------------------------


@pytest.mark.parametrize("total", [SMALL, LARGE])
def test_free_merges_with_both_neighbours(total: int) -> None:
    _, alg = fresh(total)
    a, b, c = (alg.allocate(n) for n in (200, 300, 400))
    guard = alg.allocate(10)
    assert None not in (a, b, c, guard)
    alg.deallocate(a)  # type: ignore[arg-type]
    alg.deallocate(c)  # type: ignore[arg-type]
    assert len(list(alg.free_blocks())) == 3  # a, c and the top
    alg.deallocate(b)  # type: ignore[arg-type]
    free = sorted(alg.free_blocks())
    assert free[0] == (a - 16, 208 + 320 + 416)  # type: ignore[operator]
    assert len(free) == 2
    alg.deallocate(guard)  # type: ignore[arg-type]
    assert alg.all_memory_deallocated() and len(list(alg.free_blocks())) == 1
    alg.verify()


# -- bad pointers ------------------------------------------------------------------------------


def test_bad_frees_raise_and_change_nothing() -> None:
    buf, alg = fresh()
    a, b = alg.allocate(100), alg.allocate(100)
    assert a is not None and b is not None
    alg.deallocate(a)
    before = bytes(buf)
    for bad in (a, b + 16, b + 8, b - 16, 0, 8, START + 16, len(buf), -16, 10**12):
        with pytest.raises(InvalidPointer):
            alg.deallocate(bad)
        assert bytes(buf) == before, f"deallocate({bad}) changed the segment"
    with pytest.raises(InvalidPointer):
        alg.deallocate("64")  # type: ignore[arg-type]
    alg.deallocate(b)
    with pytest.raises(InvalidPointer):  # b merged into a's free block: still refused
        alg.deallocate(b)
    assert alg.all_memory_deallocated()


# -- corrupt segments --------------------------------------------------------------------------


def test_attach_rejects_garbage() -> None:
    for garbage in (bytes(SMALL), bytes(range(256)) * (SMALL // 256)):
        with pytest.raises(SegmentCorrupt):
            BestFit.attach(memoryview(bytearray(garbage)), START)


def test_attach_sees_what_format_wrote() -> None:
    buf, alg = fresh()
    offset = alg.allocate(500)
    copy = bytearray(buf)
    again = BestFit.attach(memoryview(copy), START)
    assert again.usable_size(offset) == alg.usable_size(offset)  # type: ignore[arg-type]
    assert again.free_memory == alg.free_memory and again.size == alg.size
    again.verify()


def _word(alg: BestFit, byte_offset: int, value: int | None = None) -> int:
    if value is not None:
        alg.words[byte_offset // 8] = value
    return alg.words[byte_offset // 8]


@pytest.mark.parametrize("total", [SMALL, LARGE])
def test_a_planted_cycle_is_found_not_followed(total: int) -> None:
    _, alg = fresh(total)
    holes = _holes(alg, [100, 100, 100])
    block = holes[0] - 16
    _word(alg, block + 16, block // 8)  # NEXT points to itself: a cycle skipping the others
    _word(alg, block + 24, block // 8)
    with pytest.raises(SegmentCorrupt):
        alg.verify()
    assert not alg.check_sanity()


def test_a_trie_cycle_is_found_not_followed() -> None:
    _, alg = fresh(SMALL)
    holes = _holes(alg, [1000, 1500, 1200])
    for offset in holes:  # each node its own child (links are word indices)
        _word(alg, offset - 16 + 32, (offset - 16) // 8)
        _word(alg, offset - 16 + 40, (offset - 16) // 8)
    with pytest.raises(SegmentCorrupt):
        alg.verify()
    with pytest.raises(SegmentCorrupt):
        alg.allocate(1100)


@pytest.mark.parametrize("size", [0, 1 << 40, 24])
def test_an_impossible_size_is_reported(size: int) -> None:
    _, alg = fresh()
    a = alg.allocate(100)
    alg.allocate(100)
    _word(alg, a - 8, size | 3)  # type: ignore[operator]
    with pytest.raises(SegmentCorrupt):
        alg.verify()
    with pytest.raises(InvalidPointer):
        alg.deallocate(a)  # type: ignore[arg-type]


def test_a_wild_link_gives_segment_corrupt_not_index_error() -> None:
    _, alg = fresh(LARGE)
    holes = _holes(alg, [300, 300])
    _word(alg, holes[0], 1 << 40)  # NEXT of the bin's oldest block points far away
    with pytest.raises(SegmentCorrupt):
        alg.allocate(300)
    with pytest.raises(SegmentCorrupt):
        alg.verify()


# -- region size -------------------------------------------------------------------------------


def test_grow_and_shrink_round_trip() -> None:
    buf = bytearray(SMALL + 5000)
    alg = BestFit.format(memoryview(buf), START, SMALL - START)
    size, free = alg.size, alg.free_memory
    kept = alg.allocate(1000)
    alg.grow(5000)
    assert alg.size == size + 5000 and alg.free_memory == free - 1008 + 5000 // 16 * 16
    big = alg.allocate(free)  # only fits with the grown tail
    assert big is not None
    alg.deallocate(big)
    alg.verify()
    shrunk = alg.shrink_to_fit()
    assert shrunk == kept - 16 + 1008 + 16 - START  # type: ignore[operator]
    assert alg.size == shrunk and alg.free_memory == 0
    alg.verify()
    alg.deallocate(kept)  # type: ignore[arg-type]
    minimum = alg.shrink_to_fit()
    assert minimum == alg._first * 8 + MIN_BLOCK + 16 - START
    assert alg.free_memory == MIN_BLOCK and alg.all_memory_deallocated()
    alg.grow(4000)
    assert alg.allocate(3000) is not None
    alg.verify()


def test_shrink_to_fit_of_an_empty_minimum_segment() -> None:
    buf = bytearray(START + MIN_SEGMENT_SIZE)
    alg = BestFit.format(memoryview(buf), START, MIN_SEGMENT_SIZE)
    assert alg.free_memory == MIN_BLOCK
    assert alg.shrink_to_fit() == MIN_SEGMENT_SIZE
    with pytest.raises(ValueError):
        BestFit.format(memoryview(buf), START, MIN_SEGMENT_SIZE - 16)


@pytest.mark.parametrize("extra", [7, 16, 32, 40])
def test_grow_by_less_than_a_block_keeps_the_end_marker(extra: int) -> None:
    """Boost moves its end marker and leaves a gap too small to be a block."""
    buf = bytearray(4096 + 200)
    alg = BestFit.format(memoryview(buf), START, 4096 - START)
    taken = alg.allocate(alg.free_memory - 8)
    assert taken is not None and alg.free_memory == 0
    alg.grow(extra)
    alg.verify()
    assert alg.size == 4096 - START + extra and alg.free_memory == 0
    alg.grow(100)
    alg.verify()
    assert alg.free_memory == (extra + 100) // 16 * 16, "the small gap is taken in now"
    alg.deallocate(taken)
    alg.verify()


# -- allocation_command ------------------------------------------------------------------------


@pytest.mark.parametrize("total", [SMALL, LARGE])
def test_expand_backwards_into_a_free_predecessor(total: int) -> None:
    buf, alg = fresh(total)
    a, b, guard = alg.allocate(500), alg.allocate(200), alg.allocate(10)
    assert a is not None and b is not None and guard is not None
    buf[b: b + 200] = b"x" * 200
    alg.deallocate(a)
    got, received = alg.allocation_command(Command.EXPAND_BWD, 400, 400, b)
    assert got is not None and got <= b < got + received and received >= 400
    assert got % 16 == 0 and received == alg.usable_size(got)
    assert bytes(buf[b: b + 200]) == b"x" * 200, "the algorithm must not move the data"
    assert got == a + 512 - 416 + 208 - 208 or got >= a
    alg.verify()
    got2, received2 = alg.allocation_command(Command.EXPAND_BWD, 5000, 5000, got)
    assert (got2, received2) == (None, 0)
    alg.verify()


def test_expand_backwards_takes_the_whole_predecessor_when_the_rest_is_too_small() -> None:
    _, alg = fresh()
    a, b = alg.allocate(100), alg.allocate(100)
    alg.allocate(10)
    alg.deallocate(a)  # type: ignore[arg-type]
    got, received = alg.allocation_command(
        Command.EXPAND_BWD | Command.ZERO_MEMORY, 200, 200, b)
    assert got == a and received == 112 + 104  # 208 would leave 16 bytes: too few for a block
    assert bytes(alg._buf[got: b]) == bytes(b - got)  # type: ignore[operator]
    alg.verify()


def test_expand_forward_then_allocate_new_fallback() -> None:
    _, alg = fresh()
    a = alg.allocate(100)
    alg.allocate(10)
    got, received = alg.allocation_command(
        Command.EXPAND_FWD | Command.ALLOCATE_NEW | Command.ZERO_MEMORY, 300, 300, a)
    assert got != a and got is not None and received == alg.usable_size(got) >= 300
    assert bytes(alg._buf[got: got + received]) == bytes(received)
    alg.verify()


def test_shrink_and_try_shrink() -> None:
    _, alg = fresh()
    a = alg.allocate(1000)
    assert a is not None
    alg.allocate(10)
    assert alg.allocation_command(Command.SHRINK_IN_PLACE, 1000, 990, a) == (a, 1000)
    assert alg.allocation_command(Command.SHRINK_IN_PLACE, 995, 990, a) == (None, 0)
    assert alg.allocation_command(Command.TRY_SHRINK_IN_PLACE, 995, 990, a) == (a, 1000)
    assert alg.allocation_command(Command.SHRINK_IN_PLACE, 1000, 0, a) == (a, 40)
    assert alg.allocation_command(Command.SHRINK_IN_PLACE, 1000, 100, a) == (None, 0)
    # preferred above the limit: a failed command, as Boost answers it (not an error)
    assert alg.allocation_command(Command.SHRINK_IN_PLACE, 10, 20, a) == (None, 0)
    assert alg.usable_size(a) == 40
    alg.verify()


# -- aligned allocations -----------------------------------------------------------------------


@pytest.mark.parametrize("total", [SMALL, LARGE])
@pytest.mark.parametrize(("size", "alignment"), [(100, 128), (3 * 128 - 8, 128), (10, 4096)])
def test_aligned_returns_front_and_tail(total: int, size: int, alignment: int) -> None:
    _, alg = fresh(total)
    alg.allocate(24)  # so the top's first aligned offset leaves a front
    before = alg.free_memory
    offset = alg.allocate_aligned(size, alignment)
    assert offset is not None and offset % alignment == 0
    assert before - alg.free_memory == block_bytes(alg, offset) == max(48, (size + 23) // 16 * 16)
    alg.verify()


def test_over_aligned_request_fits_an_exact_block() -> None:
    """Boost asks for about twice the request and fails; the exact fit is found here."""
    _, alg = fresh(4096 + START)
    pad = alg.allocate(4096 - 16 - 16 - alg._first * 8 % 4096 - 8 + 16)
    assert pad is not None
    offset = alg.allocate_aligned(alg.free_memory - 8 - 64, 4096)
    assert offset is not None and offset % 4096 == 0
    alg.verify()


# -- a model machine ---------------------------------------------------------------------------


class BestFitMachine(RuleBasedStateMachine):
    """Random operations on the algorithm itself, against a model of live blocks and bytes."""

    @initialize(total=st.sampled_from([4096, SMALL, LARGE]))
    def create(self, total: int) -> None:
        self.buf = bytearray(total + 4096)
        self.alg = BestFit.format(memoryview(self.buf), START, total - START)
        self.live: dict[int, bytes] = {}
        self.counter = 0
        self.accounted = self._accounted()
        self.given = self.taken = 0  # bytes grow was given / took in since format or shrink

    def _accounted(self) -> int:
        return self.alg.free_memory + sum(
            usable + 8 for _, usable in self.alg.allocated_blocks())

    def _fill(self, offset: int, size: int) -> None:
        self.counter += 1
        data = bytes([self.counter % 251 + 1]) * size
        self.buf[offset: offset + size] = data
        self.live[offset] = data

    def _pick(self, data: st.DataObject) -> int:
        return data.draw(st.sampled_from(sorted(self.live)))

    @rule(size=st.one_of(st.integers(0, 200), st.integers(0, 3000), st.integers(15000, 40000)))
    def allocate(self, size: int) -> None:
        offset = self.alg.allocate(size)
        if offset is not None:
            assert offset not in self.live
            self._fill(offset, size)

    @rule(size=st.integers(0, 2000), alignment=st.sampled_from([32, 64, 256, 1024]))
    def allocate_aligned(self, size: int, alignment: int) -> None:
        offset = self.alg.allocate_aligned(size, alignment)
        if offset is not None:
            assert offset % alignment == 0
            self._fill(offset, size)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        offset = self._pick(data)
        self.alg.deallocate(offset)
        del self.live[offset]
        before = bytes(self.buf)
        with pytest.raises(InvalidPointer):
            self.alg.deallocate(offset)
        assert bytes(self.buf) == before

    @precondition(lambda self: self.live)
    @rule(data=st.data(), extra=st.integers(1, 3000),
          command=st.sampled_from([Command.EXPAND_FWD, Command.EXPAND_BWD,
                                   Command.EXPAND_FWD | Command.EXPAND_BWD]))
    def expand(self, data: st.DataObject, extra: int, command: Command) -> None:
        offset = self._pick(data)
        old = self.live[offset]
        wanted = len(old) + extra
        got, received = self.alg.allocation_command(command, wanted, wanted + extra, offset)
        if got is None:
            assert received == 0 and bytes(self.buf[offset: offset + len(old)]) == old
            return
        assert got <= offset < got + received and wanted <= received == self.alg.usable_size(got)
        assert bytes(self.buf[offset: offset + len(old)]) == old
        del self.live[offset]
        self.buf[got: got + len(old)] = old  # the manager's move
        self._fill(got, wanted)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def shrink(self, data: st.DataObject) -> None:
        offset = self._pick(data)
        old = self.live[offset]
        preferred = data.draw(st.integers(0, len(old)))
        got, received = self.alg.allocation_command(
            Command.SHRINK_IN_PLACE, len(old), preferred, offset)
        if got is not None:
            assert got == offset and preferred <= received <= max(len(old), received)
            assert received == self.alg.usable_size(offset)
            self.live[offset] = old[:preferred]

    @rule(extra=st.integers(0, 4096))
    def grow(self, extra: int) -> None:
        room = len(self.buf) - START - self.alg.size
        extra = min(extra, room)
        before = self._accounted()
        self.alg.grow(extra)
        gained = self._accounted() - before
        self.given += extra
        self.taken += gained
        assert 0 <= gained and self.taken <= self.given, "grow took in more than it was given"
        assert self.given - self.taken < MIN_BLOCK + 16, "grow left a whole block unused"
        self.accounted += gained

    @rule()
    def shrink_to_fit(self) -> None:
        before, size = self.alg.free_memory, self.alg.size
        new_size = self.alg.shrink_to_fit()
        assert new_size <= size
        self.accounted -= before - self.alg.free_memory
        self.given = self.taken = 0

    @rule()
    def reattach(self) -> None:
        self.alg = BestFit.attach(memoryview(self.buf), START)

    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "alg"):
            return
        self.alg.verify()
        live = dict(self.alg.allocated_blocks())
        assert set(self.live) == set(live)
        end = 0
        for offset in sorted(self.live):
            data = self.live[offset]
            assert offset >= end and offset % 16 == 0
            assert bytes(self.buf[offset: offset + len(data)]) == data
            end = offset + live[offset]
        assert end <= START + self.alg.size
        assert sum(size for _, size in self.alg.free_blocks()) == self.alg.free_memory
        assert self._accounted() == self.accounted


TestBestFitMachine = BestFitMachine.TestCase


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=40))
def test_allocating_then_freeing_everything_restores_the_segment(sizes: list[int]) -> None:
    _, alg = fresh(SMALL)
    start_free = alg.free_memory
    offsets = [o for o in (alg.allocate(s) for s in sizes) if o is not None]
    for offset in reversed(offsets[::2]):
        alg.deallocate(offset)
    for offset in offsets[1::2]:
        alg.deallocate(offset)
    assert alg.free_memory == start_free and alg.all_memory_deallocated()
    assert list(alg.free_blocks()) == [(alg._first * 8, start_free)]
