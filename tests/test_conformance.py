"""The conformance suite every registered algorithm runs, third-party ones included.

A hypothesis state machine drives a segment through allocate / free / realloc (through
``allocation_command``) / aligned / many / bad frees / grow / reopen-from-a-byte-copy, and after
every step checks the invariants: blocks inside the segment, never overlapping, aligned, the
bytes each holds intact, ``check_sanity()``, and exact free-memory accounting. An algorithm
passes by registering: the test classes below are made from ``plugins().algorithms``.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from segalloc import (
    Command,
    InvalidPointer,
    ManagedExternalBuffer,
    ManagedHeapMemory,
    Mode,
    plugins,
)

ALIGNMENTS = [1, 8, 16, 32, 64, 128, 256, 4096]
SIZES = st.one_of(st.integers(0, 64), st.integers(0, 600), st.integers(600, 6000))


def _pattern(origin: int, size: int) -> bytes:
    """Bytes unique to the handle a block was first written at, so any overwrite shows."""
    seed = (origin * 2654435761 + 12345) & 0xFFFFFFFF
    return (seed.to_bytes(4, "little") * (size // 4 + 1))[:size]


class SegmentMachine(RuleBasedStateMachine):
    """Random operations on one segment of one algorithm, checked against a model."""

    algorithm: str = ""

    @initialize(size=st.sampled_from([4096, 16384, 65536]))
    def create(self, size: int) -> None:
        self.seg = ManagedHeapMemory(size, algorithm=self.algorithm)
        self.cls = type(self.seg.algorithm)
        #: handle -> (requested size, alignment asked for)
        self.blocks: dict[int, tuple[int, int]] = {}
        #: handle -> the handle its bytes were first written at (they move with realloc)
        self.origin: dict[int, int] = {}
        self.heap = True
        self.grown = self.region_growth = 0
        self.fresh_free = self.seg.get_free_memory()
        self.accounted = self._accounted()

    # -- helpers -------------------------------------------------------------------------
    def _accounted(self) -> int:
        """Free memory plus every live block's full size: constant unless the region grows."""
        alg = self.seg.algorithm
        payload = alg.PAYLOAD_PER_ALLOCATION
        return alg.free_memory + sum(usable + payload for _, usable in alg.allocated_blocks())

    def _write(self, handle: int, size: int) -> None:
        self.seg.view(handle, size)[:] = _pattern(handle, size)

    def _intact(self, handle: int, size: int, origin: int | None = None) -> bool:
        source = self.origin.get(handle, handle) if origin is None else origin
        return bytes(self.seg.view(handle, size)) == _pattern(source, size)

    def _add(self, handle: int, size: int, alignment: int = 1) -> None:
        assert handle not in self.blocks, f"handle {handle} handed out twice"
        assert self.seg.usable_size(handle) >= size
        self.blocks[handle] = (size, alignment)
        self.origin[handle] = handle
        self._write(handle, size)

    def _move(self, old: int, new: int, size: int) -> None:
        """The block at ``old`` now lives at ``new`` holding ``size`` bytes of its data."""
        alignment = self.blocks.pop(old)[1]
        origin = self.origin.pop(old)
        assert new not in self.blocks, f"handle {new} handed out twice"
        self.blocks[new] = (size, alignment if new == old else 1)
        self.origin[new] = origin

    def _drop(self, handle: int) -> None:
        del self.blocks[handle]
        del self.origin[handle]

    def _census(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
        alg = self.seg.algorithm
        return sorted(alg.allocated_blocks()), sorted(alg.free_blocks()), alg.free_memory

    def _pick(self, data: st.DataObject) -> int:
        return data.draw(st.sampled_from(sorted(self.blocks)))

    # -- rules -----------------------------------------------------------------------------
    @rule(size=SIZES)
    def allocate(self, size: int) -> None:
        handle = self.seg.allocate(size, nothrow=True)
        if handle is not None:
            self._add(handle, size)

    @rule(size=SIZES, alignment=st.sampled_from(ALIGNMENTS))
    def allocate_aligned(self, size: int, alignment: int) -> None:
        handle = self.seg.allocate_aligned(size, alignment, nothrow=True)
        if handle is not None:
            assert handle % alignment == 0, f"{handle} is not aligned to {alignment}"
            self._add(handle, size, alignment)

    @rule(sizes=st.lists(st.integers(0, 700), min_size=1, max_size=8))
    def allocate_many(self, sizes: list[int]) -> None:
        before = self._census()
        handles = self.seg.allocate_many(sizes, nothrow=True)
        if not handles:
            assert self._census() == before, "a failed allocate_many changed the blocks"
            return
        assert len(handles) == len(sizes)
        for handle, size in zip(handles, sizes):
            self._add(handle, size)

    @precondition(lambda self: self.blocks)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        handle = self._pick(data)
        self.seg.deallocate(handle)
        self._drop(handle)

    @precondition(lambda self: len(self.blocks) >= 2)
    @rule(data=st.data())
    def free_many(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.blocks)), min_size=1,
                                    max_size=4, unique=True))
        self.seg.deallocate_many(chosen)
        for handle in chosen:
            self._drop(handle)

    @precondition(lambda self: self.blocks)
    @rule(data=st.data(), new_size=SIZES)
    def realloc(self, data: st.DataObject, new_size: int) -> None:
        """C's realloc through allocation_command: shrink or expand in place, else move."""
        handle = self._pick(data)
        old_size, _ = self.blocks[handle]
        if new_size <= old_size:
            got, received = self.seg.allocation_command(
                Command.TRY_SHRINK_IN_PLACE | Command.NOTHROW, old_size, new_size, handle)
            assert got == handle and new_size <= received, "TRY_SHRINK_IN_PLACE must keep the block"
            assert self._intact(handle, new_size), "shrinking lost data"
            self._move(handle, handle, new_size)
            return
        got, received = self.seg.allocation_command(
            Command.EXPAND_FWD | Command.ALLOCATE_NEW | Command.NOTHROW, new_size, new_size, handle)
        if got is None:
            assert received == 0
            return
        assert received >= new_size and self.seg.usable_size(got) >= received
        if got != handle:
            self.seg.view(got, old_size)[:] = self.seg.view(handle, old_size)
            self.seg.deallocate(handle)
        assert self._intact(got, old_size, self.origin[handle]), "expanding lost data"
        self._move(handle, got, old_size)

    @precondition(lambda self: self.blocks)
    @rule(data=st.data(), extra=st.integers(1, 2000))
    def expand_backwards(self, data: st.DataObject, extra: int) -> None:
        """EXPAND_BWD (where the algorithm supports it) keeps the data at the new handle."""
        handle = self._pick(data)
        old_size, _ = self.blocks[handle]
        wanted = old_size + extra
        got, received = self.seg.allocation_command(
            Command.EXPAND_BWD | Command.EXPAND_FWD | Command.NOTHROW, wanted, wanted, handle)
        if got is None:
            assert self._intact(handle, old_size), "a failed expansion changed the block"
            return
        assert received >= wanted
        assert got <= handle < got + received, "backwards expansion must cover the old block"
        assert self._intact(got, old_size, self.origin[handle]), "expansion lost data"
        self._move(handle, got, old_size)

    @precondition(lambda self: self.blocks)
    @rule(data=st.data())
    def shrink_in_place(self, data: st.DataObject) -> None:
        handle = self._pick(data)
        old_size, _ = self.blocks[handle]
        preferred = data.draw(st.integers(0, old_size))
        old_usable = self.seg.usable_size(handle)
        got, received = self.seg.allocation_command(
            Command.SHRINK_IN_PLACE | Command.NOTHROW, old_size, preferred, handle)
        if got is None:
            return
        assert got == handle and preferred <= received <= old_usable
        assert self._intact(handle, preferred)
        self._move(handle, handle, preferred)

    @rule(sizes=st.lists(SIZES, min_size=1, max_size=6))
    def zero_free_memory(self, sizes: list[int]) -> None:
        """Boost's contract (its template's test_clear_free_memory), on any heap shape: after
        ``zero_free_memory()`` a block allocated from the free memory reads all zeros."""
        self.seg.zero_free_memory()
        for size in sizes:
            handle = self.seg.allocate(size, nothrow=True)
            if handle is None:
                return
            usable = self.seg.usable_size(handle)
            assert bytes(self.seg.view(handle, usable)) == bytes(usable), (
                f"block {handle} ({usable} bytes) allocated after zero_free_memory is not zero")
            self._add(handle, size)

    @rule(data=st.data())
    def bad_free(self, data: st.DataObject) -> None:
        """Offsets that are not live blocks raise InvalidPointer and change nothing."""
        candidates = [0, 8, self.seg.get_size(), self.seg.get_size() + 4096, 10**12]
        candidates += [handle + 16 for handle, (size, _) in self.blocks.items() if size > 16]
        candidates += [handle + 8 for handle in self.blocks]
        offset = data.draw(st.sampled_from(candidates))
        if offset in self.blocks:
            return
        before = bytes(self.seg.buffer)
        try:
            self.seg.deallocate(offset)
        except InvalidPointer:
            pass
        else:
            raise AssertionError(f"deallocate({offset}) of a non-block did not raise")
        assert bytes(self.seg.buffer) == before, "a rejected deallocate changed the segment"

    @precondition(lambda self: self.heap)
    @rule(extra=st.integers(0, 5000))
    def grow(self, extra: int) -> None:
        """The region takes in what it can of ``extra`` (an unaligned tail may stay unused)."""
        self.seg.grow(extra)
        self.region_growth += extra
        gained = self._accounted() - self.accounted
        assert gained >= 0, f"grow({extra}) lost {-gained} accounted bytes"
        assert self.grown + gained <= self.region_growth, "grow accounted more than it was given"
        unused = self.region_growth - self.grown - gained
        assert unused < 2 * self.seg.algorithm.ALIGNMENT + 64, f"grow left {unused} bytes unused"
        self.accounted += gained
        self.grown += gained

    @rule()
    def reopen_from_byte_copy(self) -> None:
        """Everything lives in the bytes: a copy opens as the same segment and carries on."""
        copy = bytearray(self.seg.buffer)
        self.seg.close()
        self.seg = ManagedExternalBuffer(Mode.OPEN_ONLY, copy)
        self.heap = False
        assert type(self.seg.algorithm) is self.cls

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def blocks_are_sane(self) -> None:
        if not hasattr(self, "seg"):
            return
        seg, alg = self.seg, self.seg.algorithm
        end = 0
        for handle in sorted(self.blocks):
            size, alignment = self.blocks[handle]
            assert handle >= end, f"block {handle} overlaps the previous one (ends at {end})"
            assert handle % alg.ALIGNMENT == 0 and handle % alignment == 0
            usable = seg.usable_size(handle)
            assert usable >= size and handle + usable <= seg.get_size()
            assert self._intact(handle, size), f"block {handle} lost its bytes"
            end = handle + usable
        live = {offset for offset, _ in alg.allocated_blocks()}
        assert set(self.blocks) <= live
        assert seg.check_sanity(), "check_sanity() failed"
        in_blocks = sum(size for _, size in alg.free_blocks())
        unusable = alg.free_memory - in_blocks  # a tail too small for a block may count as free
        assert 0 <= unusable < 2 * alg.ALIGNMENT + 64, f"free blocks miss {unusable} free bytes"
        assert self._accounted() == self.accounted, "free memory accounting drifted"

    def teardown(self) -> None:
        if not hasattr(self, "seg"):
            return
        self.seg.deallocate_many(list(self.blocks))
        assert self.seg.all_memory_deallocated()
        assert self.seg.check_sanity()
        assert self.seg.get_free_memory() == self.fresh_free + self.grown
        self.seg.close()


def _machines() -> dict[str, type]:
    made = {}
    for name in plugins().algorithms:
        machine = type(f"Conformance_{name}", (SegmentMachine,), {"algorithm": name})
        made[f"TestConformance_{name}"] = machine.TestCase
    return made


globals().update(_machines())


def test_a_third_party_algorithm_is_among_those_checked() -> None:
    """The example plugin, a separate distribution conftest installs for the session, runs the
    suite too: proof that registering through the entry point is all an algorithm needs."""
    assert "TestConformance_implicit_fit" in globals(), "the example plugin did not register"
