"""Boost's own memory-algorithm test template, ported: every registered algorithm must pass it.

``boost/interprocess/test/memory_algorithm_test_template.hpp`` (Boost's source tree) is the
contract Boost holds ``rbtree_best_fit`` and ``simple_seq_fit`` to: allocate until the memory
runs out, free in three orders, shrink, expand, shrink then expand back, expand backwards into
freed memory, aligned allocations, ``zero_free_memory``, ``shrink_to_fit`` / ``grow``, and
multi-allocation, each followed by ``all_memory_deallocated()`` and ``check_sanity()``. Each
check below is one function of the template, in its order, with the same loops and sizes. Two
departures: where the template's own check is broken (``return 1`` from a ``bool`` function,
``!a && b`` for ``!a || !b``) the intended check is asserted; ``get_min_size`` has no
counterpart, so the segment shrunk twice when empty must come out the same both times.

Each check runs on the segment API (``ManagedHeapMemory``, as Boost runs it on the segment
manager) and on the bare algorithm over a byte buffer (where ``NOTHROW`` is not the algorithm's
business: a failure is ``(None, 0)``). The parameters come from ``plugins().algorithms``, so a
third-party algorithm is held to the template by registering.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from segalloc import Command, ManagedHeapMemory, plugins

ALGORITHMS = sorted(plugins().algorithms)
#: the segment each check starts from: large enough for a few hundred blocks, small enough
#: that "allocate until the memory runs out" stays quick for an algorithm that walks its chain
SEGMENT_SIZE = 8192
#: where the bare algorithm's region starts in its buffer (a segment header's worth)
START = 64
NOTHROW = Command.NOTHROW


class SegmentUnderTest:
    """The template's allocator as the segment manager: a heap segment's public API."""

    def __init__(self, algorithm: str) -> None:
        self.seg = ManagedHeapMemory(SEGMENT_SIZE, algorithm=algorithm)

    def allocate(self, size: int) -> int | None:
        return self.seg.allocate(size, nothrow=True)

    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        return self.seg.allocate_aligned(size, alignment, nothrow=True)

    def deallocate(self, handle: int) -> None:
        self.seg.deallocate(handle)

    def size(self, handle: int) -> int:
        return self.seg.usable_size(handle)

    def command(self, command: Command, limit: int, preferred: int,
                reuse: int | None = None) -> tuple[int | None, int]:
        return self.seg.allocation_command(command | NOTHROW, limit, preferred, reuse)

    def allocate_many(self, sizes: Sequence[int]) -> list[int]:
        return self.seg.allocate_many(sizes, nothrow=True)

    def deallocate_many(self, handles: Sequence[int]) -> None:
        self.seg.deallocate_many(handles)

    def fill(self, handle: int, byte: int, count: int) -> None:
        self.seg.view(handle, count)[:] = bytes([byte]) * count

    def read(self, handle: int, count: int) -> bytes:
        return bytes(self.seg.view(handle, count))

    def get_free_memory(self) -> int:
        return self.seg.get_free_memory()

    def get_size(self) -> int:
        return self.seg.get_size()

    def all_memory_deallocated(self) -> bool:
        return self.seg.all_memory_deallocated()

    def check_sanity(self) -> bool:
        return self.seg.check_sanity()

    def zero_free_memory(self) -> None:
        self.seg.zero_free_memory()

    def shrink_to_fit(self) -> None:
        self.seg.shrink_to_fit()

    def grow(self, extra: int) -> None:
        self.seg.grow(extra)


class AlgorithmUnderTest(SegmentUnderTest):
    """The template's allocator as the bare algorithm over a byte buffer (its region can shrink
    and grow back inside the buffer, as the segment's storage would be trimmed and extended)."""

    def __init__(self, algorithm: str) -> None:
        self.raw = bytearray(START + SEGMENT_SIZE)
        self.alg = plugins().algorithms[algorithm].format(memoryview(self.raw), START, SEGMENT_SIZE)

    def allocate(self, size: int) -> int | None:
        return self.alg.allocate(size)

    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        return self.alg.allocate_aligned(size, alignment)

    def deallocate(self, handle: int) -> None:
        self.alg.deallocate(handle)

    def size(self, handle: int) -> int:
        return self.alg.usable_size(handle)

    def command(self, command: Command, limit: int, preferred: int,
                reuse: int | None = None) -> tuple[int | None, int]:
        return self.alg.allocation_command(command | NOTHROW, limit, preferred, reuse)

    def allocate_many(self, sizes: Sequence[int]) -> list[int]:
        return self.alg.allocate_many(sizes) or []

    def deallocate_many(self, handles: Sequence[int]) -> None:
        self.alg.deallocate_many(handles)

    def fill(self, handle: int, byte: int, count: int) -> None:
        self.raw[handle: handle + count] = bytes([byte]) * count

    def read(self, handle: int, count: int) -> bytes:
        return bytes(self.raw[handle: handle + count])

    def get_free_memory(self) -> int:
        return self.alg.free_memory

    def get_size(self) -> int:
        return self.alg.size

    def all_memory_deallocated(self) -> bool:
        return self.alg.all_memory_deallocated()

    def check_sanity(self) -> bool:
        return self.alg.check_sanity()

    def zero_free_memory(self) -> None:
        self.alg.zero_free_memory()

    def shrink_to_fit(self) -> None:
        self.alg.shrink_to_fit()

    def grow(self, extra: int) -> None:
        self.alg.grow(extra)


Allocator = SegmentUnderTest


# -- the template's helpers ----------------------------------------------------------------------
def allocate_until_full(a: Allocator, size_of: Callable[[int], int], byte: int = 0) -> list[int]:
    """``for(i = 0; ; ++i) allocate(size_of(i))`` until it fails, each block filled whole."""
    buffers = []
    while (handle := a.allocate(size_of(len(buffers)))) is not None:
        a.fill(handle, byte, a.size(handle))
        buffers.append(handle)
    assert buffers, "not even an empty allocation fits the segment"
    return buffers


def deallocate_mixed(a: Allocator, buffers: list[int], quarters: int = 4) -> None:
    """The template's "non sequential order": ``pos = (j % quarters) * len / 4``."""
    for j in range(len(buffers)):
        pos = min((j % quarters) * len(buffers) // 4, len(buffers) - 1)
        a.deallocate(buffers.pop(pos))


def deallocate_in_order(a: Allocator, buffers: list[int], order: str) -> None:
    if order == "direct":
        for handle in buffers:
            a.deallocate(handle)
    elif order == "inverse":
        for handle in reversed(buffers):
            a.deallocate(handle)
    else:
        deallocate_mixed(a, list(buffers))


def free_odd(a: Allocator, buffers: list[int | None]) -> None:
    """Free every odd-numbered block, so that expansions may find room."""
    for i in range(1, len(buffers), 2):
        handle = buffers[i]
        assert handle is not None
        a.deallocate(handle)
        buffers[i] = None


def assert_empty_and_sane(a: Allocator) -> None:
    assert a.all_memory_deallocated(), "a block is still allocated"
    assert a.check_sanity(), "check_sanity() failed"


ORDERS = ("direct", "inverse", "mixed")


# -- the template's checks, in its order ---------------------------------------------------------
def boost_allocation(a: Allocator) -> None:
    """Allocate until full, free in each order: the free memory comes back exactly."""
    for order in ORDERS:
        free = a.get_free_memory()
        deallocate_in_order(a, allocate_until_full(a, lambda i: i), order)
        assert a.get_free_memory() == free, f"{order} deallocation lost free memory"
        assert_empty_and_sane(a)


def boost_allocation_shrink(a: Allocator) -> None:
    """Shrink each block of 2i bytes to [i, 2i]: a success lands in that range."""
    buffers = allocate_until_full(a, lambda i: 2 * i)
    for i, handle in enumerate(buffers):
        got, received = a.command(Command.SHRINK_IN_PLACE, 2 * i, i, handle)
        if got is not None:
            assert got == handle and i <= received <= 2 * i
            a.fill(handle, 0, a.size(handle))
    deallocate_mixed(a, buffers)
    assert_empty_and_sane(a)


def expand_forward_while_possible(a: Allocator, i: int, handle: int) -> None:
    """``while(expand_fwd(min, preferred))``: each success holds at least ``min``."""
    least = i + 1
    preferred = max(least, 2 * i)
    while True:
        got, received = a.command(Command.EXPAND_FWD, least, preferred, handle)
        if got is None:
            return
        assert got == handle and received >= least
        least = received + 1
        preferred = 2 * least


def boost_allocation_expand(a: Allocator) -> None:
    buffers = allocate_until_full(a, lambda i: i)
    for i, handle in enumerate(buffers):
        expand_forward_while_possible(a, i, handle)
    deallocate_mixed(a, buffers)
    assert_empty_and_sane(a)


def boost_allocation_shrink_and_expand(a: Allocator) -> None:
    """Allocate (falling back to 1 byte), shrink to i within what was received, expand back:
    the expansion must give exactly the size first received. A block that got less than i
    asks for a shrink with preferred > limit, which is a failed command, not an error."""
    buffers, received_sizes = [], []
    for i in range(SEGMENT_SIZE):
        got, received = a.command(Command.ALLOCATE_NEW, i, 2 * i)
        if got is None:
            got, received = a.command(Command.ALLOCATE_NEW, 1, 2 * i)
            if got is None:
                break
        assert received == a.size(got)
        buffers.append(got)
        received_sizes.append(received)
    for i, (handle, first) in enumerate(zip(buffers, received_sizes)):
        got, received = a.command(Command.SHRINK_IN_PLACE, first, i, handle)
        if got is not None:
            assert got == handle and i <= received <= first
        elif i > first:
            assert a.size(handle) == first, "a failed shrink changed the block"
    for handle, first in zip(buffers, received_sizes):
        got, received = a.command(Command.EXPAND_FWD, first, first, handle)
        assert (got, received) == (handle, first), "the block did not expand back"
    deallocate_mixed(a, buffers)
    assert_empty_and_sane(a)


def boost_allocation_deallocation_expand(a: Allocator) -> None:
    buffers: list[int | None] = list(allocate_until_full(a, lambda i: i))
    free_odd(a, buffers)
    for i, handle in enumerate(buffers):
        if handle is not None:
            expand_forward_while_possible(a, i, handle)
    deallocate_mixed(a, [handle for handle in buffers if handle is not None])
    assert_empty_and_sane(a)


def boost_allocation_with_reuse(a: Allocator) -> None:
    """Keep only the last block, then expand it backwards (in units of an object size) until
    it cannot grow: every success is the same block grown, never a new one."""
    for object_size in range(1, 20):
        buffers = allocate_until_full(a, lambda i, k=object_size: i * k)
        for handle in buffers[:-1]:
            a.deallocate(handle)
        block = buffers[-1]
        received_objects = 0
        for i in range(SEGMENT_SIZE):
            least = received_objects + 1
            preferred = received_objects + (i + 1) * 2
            old_end = block + a.size(block)
            got, received = a.command(Command.EXPAND_BWD, least * object_size,
                                      preferred * object_size, block)
            if got is None:
                break
            assert got <= block and got + received >= old_end, "not the same block grown"
            assert received >= least * object_size
            block, received_objects = got, received // object_size
        a.deallocate(block)
        assert_empty_and_sane(a)


def boost_aligned_allocation(a: Allocator) -> None:
    """Every power-of-two size less one at every alignment that fits: aligned, then freed."""
    size = 1
    while True:
        alignment = 1
        while (handle := a.allocate_aligned(size - 1, alignment)) is not None:
            assert handle % alignment == 0, f"{handle} is not aligned to {alignment}"
            a.deallocate(handle)
            assert_empty_and_sane(a)
            alignment <<= 1
        if alignment == 1:
            break
        size <<= 1
    assert_empty_and_sane(a)


def boost_continuous_aligned_allocation(a: Allocator) -> None:
    """Fill the segment with aligned blocks of each size and alignment, free them all."""
    size = 1
    while True:
        alignment = 1
        any_at_alignment_one = True
        while alignment <= SEGMENT_SIZE:
            buffers = []
            while (handle := a.allocate_aligned(size - 1, alignment)) is not None:
                assert handle % alignment == 0, f"{handle} is not aligned to {alignment}"
                buffers.append(handle)
            if alignment == 1 and not buffers:
                any_at_alignment_one = False
            for handle in reversed(buffers):
                a.deallocate(handle)
            assert_empty_and_sane(a)
            if not any_at_alignment_one:
                break
            alignment <<= 1
        if not any_at_alignment_one:
            break
        size <<= 1
    assert_empty_and_sane(a)


def boost_clear_free_memory(a: Allocator) -> None:
    """After ``zero_free_memory()`` every block handed out reads all zeros, to its last byte."""
    buffers = allocate_until_full(a, lambda i: i, byte=1)
    for handle in reversed(buffers):
        a.deallocate(handle)
    assert_empty_and_sane(a)
    a.zero_free_memory()
    assert_empty_and_sane(a)
    buffers = []
    while (handle := a.allocate(len(buffers))) is not None:
        usable = a.size(handle)
        assert a.read(handle, usable) == bytes(usable), (
            f"block {len(buffers)} at {handle} ({usable} bytes) is not zero after zero_free_memory")
        buffers.append(handle)
    for handle in reversed(buffers):
        a.deallocate(handle)
    assert_empty_and_sane(a)


def boost_grow_shrink_to_fit(a: Allocator) -> None:
    """Shrink to fit and grow back after every free: size and free memory come back exactly."""
    original_size, original_free = a.get_size(), a.get_free_memory()
    a.shrink_to_fit()
    assert_empty_and_sane(a)
    shrunk_size, shrunk_free = a.get_size(), a.get_free_memory()
    a.grow(original_size - shrunk_size)
    assert_empty_and_sane(a)
    assert (a.get_size(), a.get_free_memory()) == (original_size, original_free)
    buffers: list[int | None] = list(allocate_until_full(a, lambda i: i))
    free_odd(a, buffers)
    live = [handle for handle in buffers if handle is not None]
    # the template's order ((j % 5) * len / 4, clamped to the last block), a shrink and a grow
    # back after each free
    for j in range(len(live)):
        pos = min((j % 5) * len(live) // 4, len(live) - 1)
        a.deallocate(live.pop(pos))
        old_free = a.get_free_memory()
        a.shrink_to_fit()
        assert a.check_sanity()
        assert a.get_size() <= original_size and a.get_free_memory() <= old_free
        a.grow(original_size - a.get_size())
        assert a.check_sanity()
        assert (a.get_size(), a.get_free_memory()) == (original_size, old_free)
    a.shrink_to_fit()
    assert (a.get_size(), a.get_free_memory()) == (shrunk_size, shrunk_free)
    assert_empty_and_sane(a)
    a.grow(original_size - shrunk_size)
    assert (a.get_size(), a.get_free_memory()) == (original_size, original_free)
    assert_empty_and_sane(a)


def boost_many_equal_allocation(a: Allocator) -> None:
    """Half the memory freed in holes, then groups of equal blocks until none fits."""
    for order in ORDERS:
        free = a.get_free_memory()
        holes: list[int | None] = list(allocate_until_full(a, lambda i: i))
        assert a.check_sanity()
        free_odd(a, holes)
        assert a.check_sanity()
        buffers: list[int] = []
        for i in range(SEGMENT_SIZE):
            group = a.allocate_many([i + 1] * ((i + 1) * 2))
            if not group:
                break
            assert len(group) == (i + 1) * 2
            buffers += group
        assert a.check_sanity()
        deallocate_in_order(a, buffers, order)
        deallocate_mixed(a, [handle for handle in holes if handle is not None])
        assert a.get_free_memory() == free, f"{order} deallocation lost free memory"
        assert_empty_and_sane(a)


REQUESTED_SIZES = [4 * i for i in range(11)]


def boost_many_different_allocation(a: Allocator) -> None:
    for order in ORDERS:
        free = a.get_free_memory()
        holes: list[int | None] = list(allocate_until_full(a, lambda i: i))
        free_odd(a, holes)
        buffers: list[int] = []
        while group := a.allocate_many(REQUESTED_SIZES):
            assert len(group) == len(REQUESTED_SIZES)
            buffers += group
        deallocate_in_order(a, buffers, order)
        deallocate_mixed(a, [handle for handle in holes if handle is not None])
        assert a.get_free_memory() == free, f"{order} deallocation lost free memory"
        assert_empty_and_sane(a)


def boost_many_deallocation(a: Allocator) -> None:
    """Groups allocated until none fits, each given back with one ``deallocate_many``."""
    free = a.get_free_memory()
    groups = []
    while group := a.allocate_many(REQUESTED_SIZES):
        groups.append(group)
    for group in groups:
        a.deallocate_many(group)
    assert a.get_free_memory() == free
    assert_empty_and_sane(a)
    groups = []
    for i in range(SEGMENT_SIZE):
        group = a.allocate_many([4 * i] * len(REQUESTED_SIZES))
        if not group:
            break
        groups.append(group)
    for group in groups:
        a.deallocate_many(group)
    assert a.get_free_memory() == free
    assert_empty_and_sane(a)


#: in the order of the template's ``test_all_allocation``
CHECKS: list[Callable[[Allocator], None]] = [
    boost_allocation,
    boost_many_equal_allocation,
    boost_many_different_allocation,
    boost_many_deallocation,
    boost_allocation_shrink,
    boost_allocation_shrink_and_expand,
    boost_allocation_expand,
    boost_allocation_deallocation_expand,
    boost_allocation_with_reuse,
    boost_aligned_allocation,
    boost_continuous_aligned_allocation,
    boost_clear_free_memory,
    boost_grow_shrink_to_fit,
]
LAYERS: dict[str, Callable[[str], Allocator]] = {
    "segment": SegmentUnderTest,
    "algorithm": AlgorithmUnderTest,
}


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_boost_template_check(algorithm: str, layer: str, check: Callable[[Allocator], None]) -> None:
    """One function of the template on a fresh allocator."""
    check(LAYERS[layer](algorithm))


@pytest.mark.parametrize("layer", LAYERS)
def test_boost_template_in_sequence(algorithm: str, layer: str) -> None:
    """The template's ``test_all_allocation``: every check on the same allocator, in order, so
    each starts from whatever state the previous one left behind."""
    a = LAYERS[layer](algorithm)
    for check in CHECKS:
        check(a)


def test_every_check_of_the_template_is_ported() -> None:
    """The template's functions, by name: none left out."""
    template = {"allocation", "allocation_shrink", "allocation_expand",
                "allocation_shrink_and_expand", "allocation_deallocation_expand",
                "allocation_with_reuse", "aligned_allocation", "continuous_aligned_allocation",
                "clear_free_memory", "grow_shrink_to_fit", "many_equal_allocation",
                "many_different_allocation", "many_deallocation"}
    assert {check.__name__.removeprefix("boost_") for check in CHECKS} == template

