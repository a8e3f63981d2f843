"""A third-party segalloc plugin: the implicit free list of Bryant & O'Hallaron's CS:APP.

It shows what an outside package needs to add an algorithm: a ``MemoryAlgorithm`` subclass,
one hook, one entry point in group ``segalloc``. Kept short and plain rather than fast: every
operation walks the physical block chain.

Region layout (offsets from the region start ``S``)::

    S+ 0  magic       u64  MAGIC
    S+ 8  region_end  u64  absolute end of the region
    S+16  arena_end   u64  absolute end of the block chain (region_end rounded down to 16)
    S+24  free_bytes  u64  sum of the free blocks' sizes
    S+32  first block

Block at ``B`` (16-aligned; the payload starts at ``B + 16``)::

    B+ 0  size_flags  u64  block size (multiple of 16, header included) | 1 if allocated
    B+ 8  prev_size   u64  size of the physical predecessor (0 for the first block)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from segalloc.errors import InvalidPointer, SegmentCorrupt
from segalloc.interfaces import Command, MemoryAlgorithm, hookimpl

MAGIC = 0x5449464C43494D49  # "IMICLFIT"
HEADER = 32
BLOCK_HEADER = 16
MIN_BLOCK = 32
USED = 1


class ImplicitFit(MemoryAlgorithm):
    """First fit over the address-ordered chain of all blocks, with boundary-tag coalescing."""

    name = "implicit_fit"
    layout_version = 1
    ALIGNMENT = 16
    PAYLOAD_PER_ALLOCATION = BLOCK_HEADER
    MIN_SEGMENT_SIZE = HEADER + MIN_BLOCK + 16

    def __init__(self, buf: memoryview, start: int) -> None:
        self.bytes = buf
        self.words = buf[: len(buf) // 8 * 8].cast("Q")
        self.start = start
        self.first = (start + HEADER + 15) & ~15

    # -- fields ----------------------------------------------------------------------------
    def _get(self, offset: int) -> int:
        return int(self.words[offset >> 3])

    def _set(self, offset: int, value: int) -> None:
        self.words[offset >> 3] = value

    def _arena_end(self) -> int:
        return self._get(self.start + 16)

    def _add_free(self, delta: int) -> None:
        self._set(self.start + 24, self._get(self.start + 24) + delta)

    def _header(self, block: int, size: int, used: bool, prev: int) -> None:
        self._set(block, size | (USED if used else 0))
        self._set(block + 8, prev)
        nxt = block + size
        if nxt < self._arena_end():
            self._set(nxt + 8, size)

    # -- binding ---------------------------------------------------------------------------
    @classmethod
    def format(cls, buf: memoryview, start: int, size: int) -> ImplicitFit:
        alg = cls(buf, start)
        end = (start + size) & ~15
        if start % 8 or end - alg.first < MIN_BLOCK:
            raise ValueError(f"implicit_fit needs at least {cls.MIN_SEGMENT_SIZE} bytes")
        alg._set(start, MAGIC)
        alg._set(start + 8, start + size)
        alg._set(start + 16, end)
        alg._set(start + 24, end - alg.first)
        alg._header(alg.first, end - alg.first, False, 0)
        return alg

    @classmethod
    def attach(cls, buf: memoryview, start: int) -> ImplicitFit:
        alg = cls(buf, start)
        if start + HEADER > len(buf) or alg._get(start) != MAGIC:
            raise SegmentCorrupt("implicit_fit: bad region magic")
        if not alg.first < alg._arena_end() <= alg._get(start + 8) <= len(buf):
            raise SegmentCorrupt("implicit_fit: region bounds lie outside the buffer")
        return alg

    # -- the chain -------------------------------------------------------------------------
    def _blocks(self) -> Iterator[tuple[int, int, bool]]:
        """(offset, size, allocated) in address order, bounded by the arena."""
        block, end, prev = self.first, self._arena_end(), 0
        while block < end:
            word = self._get(block)
            size = word & ~15
            if size < MIN_BLOCK or block + size > end or self._get(block + 8) != prev:
                raise SegmentCorrupt(f"implicit_fit: bad block header at {block}")
            yield block, size, bool(word & USED)
            block, prev = block + size, size

    def _block_of(self, offset: int) -> tuple[int, int]:
        if offset % 16 or not self.first < offset < self._arena_end():
            raise InvalidPointer(f"{offset} is not a block of this segment")
        for block, size, used in self._blocks():
            if block + BLOCK_HEADER == offset and used:
                return block, size
            if block >= offset:
                break
        raise InvalidPointer(f"{offset} is not a live block of this segment")

    def _take(self, block: int, size: int, need: int) -> None:
        """Mark the free ``block`` allocated, splitting off a free tail when it is big enough."""
        prev = self._get(block + 8)
        if size - need >= MIN_BLOCK:
            self._header(block, need, True, prev)
            self._header(block + need, size - need, False, need)
            self._add_free(-need)
        else:
            self._header(block, size, True, prev)
            self._add_free(-size)

    @staticmethod
    def _need(size: int) -> int:
        return max((size + 15) & ~15, 16) + BLOCK_HEADER

    # -- allocation ------------------------------------------------------------------------
    def allocate(self, size: int) -> int | None:
        return self.allocate_aligned(size, 16)

    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        need = self._need(size)
        for block, bsize, used in self._blocks():
            if used:
                continue
            payload = (block + BLOCK_HEADER + alignment - 1) & -alignment
            while 0 < payload - BLOCK_HEADER - block < MIN_BLOCK:
                payload += alignment
            front = payload - BLOCK_HEADER - block
            if front + need > bsize:
                continue
            if front:
                prev = self._get(block + 8)
                self._header(block, front, False, prev)
                self._header(block + front, bsize - front, False, front)
                block, bsize = block + front, bsize - front
            self._take(block, bsize, need)
            return block + BLOCK_HEADER
        return None

    def deallocate(self, offset: int) -> None:
        block, size = self._block_of(offset)
        self._add_free(size)
        prev = self._get(block + 8)
        nxt = block + size
        if nxt < self._arena_end() and not self._get(nxt) & USED:
            size += self._get(nxt) & ~15
        if prev and not self._get(block - prev) & USED:
            block, size = block - prev, size + prev
            prev = self._get(block + 8)
        self._header(block, size, False, prev)

    def usable_size(self, offset: int) -> int:
        return self._block_of(offset)[1] - BLOCK_HEADER

    def allocation_command(
        self, command: Command, limit_size: int, preferred_size: int, reuse: int | None
    ) -> tuple[int | None, int]:
        if reuse is not None and command & (Command.SHRINK_IN_PLACE | Command.TRY_SHRINK_IN_PLACE):
            return self._shrink(reuse, limit_size, preferred_size, command)
        if reuse is not None and command & Command.EXPAND_FWD:
            received = self._expand(reuse, limit_size, preferred_size, command)
            if received:
                return reuse, received
        if command & Command.ALLOCATE_NEW:
            for want in (preferred_size, limit_size):
                offset = self.allocate(want)
                if offset is not None:
                    received = self.usable_size(offset)
                    if command & Command.ZERO_MEMORY:
                        self.bytes[offset : offset + received] = bytes(received)
                    return offset, received
        return None, 0

    def _expand(self, offset: int, limit: int, preferred: int, command: Command) -> int:
        block, size = self._block_of(offset)
        nxt = block + size
        spare = 0
        if nxt < self._arena_end() and not self._get(nxt) & USED:
            spare = self._get(nxt) & ~15
        if size + spare < self._need(limit):
            return 0
        need = min(self._need(preferred), size + spare)
        if need > size:
            prev = self._get(block + 8)
            self._header(nxt, spare, False, size)
            self._header(block, size + spare, False, prev)
            self._add_free(size)
            self._take(block, size + spare, need)
            if command & Command.ZERO_MEMORY:
                self.bytes[nxt : block + need] = bytes(block + need - nxt)
        return self.usable_size(offset)

    def _shrink(
        self, offset: int, limit: int, preferred: int, command: Command
    ) -> tuple[int | None, int]:
        """Boost's shrink: to a usable size in ``[preferred, limit]``; a TRY_ shrink that
        cannot keeps the block as it is."""
        block, size = self._block_of(offset)
        need = self._need(preferred)
        if need - BLOCK_HEADER <= limit and size - need >= MIN_BLOCK:
            self._header(block, size, False, self._get(block + 8))
            self._add_free(size)
            self._take(block, size, need)
            tail, tail_size = block + need, size - need
            nxt = tail + tail_size
            if nxt < self._arena_end() and not self._get(nxt) & USED:
                self._header(tail, tail_size + (self._get(nxt) & ~15), False, need)
        received = self.usable_size(offset)
        if preferred <= received <= limit or command & Command.TRY_SHRINK_IN_PLACE:
            return offset, received
        return None, 0

    # -- region size -----------------------------------------------------------------------
    def _last(self) -> tuple[int, int, bool] | None:
        blocks = list(self._blocks())
        return blocks[-1] if blocks else None

    def grow(self, extra: int) -> None:
        region_end = self._get(self.start + 8) + extra
        old_end, new_end = self._arena_end(), region_end & ~15
        self._set(self.start + 8, region_end)
        last = self._last()
        assert last is not None
        block, size, used = last
        if not used:
            self._set(self.start + 16, new_end)
            self._header(block, new_end - block, False, self._get(block + 8))
            self._add_free(new_end - old_end)
        elif new_end - old_end >= MIN_BLOCK:
            self._set(self.start + 16, new_end)
            self._header(old_end, new_end - old_end, False, size)
            self._add_free(new_end - old_end)

    def shrink_to_fit(self) -> int:
        last = self._last()
        assert last is not None
        block, size, used = last
        if not used and block > self.first:
            self._set(self.start + 16, block)
            self._set(self.start + 8, block)
            self._add_free(-size)
        elif not used:
            end = block + MIN_BLOCK
            self._set(self.start + 16, end)
            self._set(self.start + 8, end)
            self._header(block, MIN_BLOCK, False, 0)
            self._add_free(MIN_BLOCK - size)
        return self._get(self.start + 8) - self.start

    @property
    def size(self) -> int:
        return self._get(self.start + 8) - self.start

    @property
    def free_memory(self) -> int:
        return self._get(self.start + 24)

    # -- checks ----------------------------------------------------------------------------
    def verify(self) -> None:
        free, previous_free = 0, False
        for _, size, used in self._blocks():
            if not used and previous_free:
                raise SegmentCorrupt("implicit_fit: two free blocks side by side")
            previous_free = not used
            free += 0 if used else size
        if free != self.free_memory:
            raise SegmentCorrupt(f"implicit_fit: free bytes {free} != recorded {self.free_memory}")

    def all_memory_deallocated(self) -> bool:
        return not any(used for _, _, used in self._blocks())

    def zero_free_memory(self) -> None:
        for block, size, used in list(self._blocks()):
            if not used:
                self.bytes[block + BLOCK_HEADER : block + size] = bytes(size - BLOCK_HEADER)

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        return iter([(b, s) for b, s, used in self._blocks() if not used])

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        return iter([(b + BLOCK_HEADER, s - BLOCK_HEADER) for b, s, used in self._blocks() if used])


@hookimpl
def segalloc_register_algorithms(register: Any) -> None:
    """Register the implicit-list algorithm."""
    register(ImplicitFit)
