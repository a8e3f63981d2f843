"""The timed trace replay loop: the replay rules of ``segalloc.bench.replay`` over C arrays.

Compiled by Cython from this source (``replay_loop.pxd``; interpreted under
``SEGALLOC_PURE_PYTHON=1``). The trace's operations are four int64 columns and each ID's offset
and size an int64 table, so the loop reads and writes C integers. An algorithm whose core
derives from ``AlgorithmKernel`` is driven through its ``kernel_*`` C methods (no Python
dispatch, no boxing); any other (a third party's pure-Python plugin) through its
``MemoryAlgorithm`` methods, under the same rules. The kernel methods take their arguments as
checked, so the loop fails a request larger than the buffer without calling them: no block
that large exists. Sizes and alignments are stored clamped to ``VALUE_LIMIT`` (no buffer is
that large either, so no outcome changes).

``run`` replays a span of the trace; with ``spans`` it also times each operation that calls the
algorithm, the C clock read around the algorithm's calls only (``segalloc.bench.probes``).
"""

from __future__ import annotations

import statistics
from array import array
from collections.abc import Sequence

import cython

from segalloc import Command, MemoryAlgorithm
from segalloc.bench.traces import ALLOC, FREE, Op
from segalloc.kernel import kernel_of

if not cython.compiled:  # compiled, both clocks are inline C functions of replay_loop.pxd
    from time import perf_counter_ns as now_ns
    from time import thread_time_ns as cpu_now_ns

__all__ = ["BUDGET_CHECK_OPS", "NO_DEADLINE", "UNTIMED", "VALUE_LIMIT", "ReplayLoop",
           "clock_cost_ns"]

ALLOC_OP = ALLOC
FREE_OP = FREE
SHRINK = int(Command.SHRINK_IN_PLACE)
EXPAND = int(Command.EXPAND_FWD)
#: an ID that holds no block, in the offset table
UNBOUND = -1
#: sizes and alignments beyond this are stored as this (no buffer holds either)
VALUE_LIMIT = 1 << 62
#: ``spans`` of an operation that did not call the algorithm (its ID was unbound)
UNTIMED = -1
#: the Python methods the loop's kernel calls stand for: a subclass overriding any of them is
#: driven through its methods
DRIVEN_METHODS = ("allocate", "allocate_aligned", "deallocate", "allocation_command")
#: with a deadline, ``run`` reads the thread's CPU clock after every this many operations
BUDGET_CHECK_OPS = 500
#: ``run``'s deadline when it has none
NO_DEADLINE = -1


def clock_cost_ns(readings: cython.Py_ssize_t = 2001) -> int:
    """The median of back-to-back readings of the loop's clock: what a timed span of nothing
    measures, subtracted from each operation's span."""
    gaps = []
    for _ in range(readings):
        start: cython.longlong = now_ns()
        gaps.append(now_ns() - start)
    return int(statistics.median(gaps))


def _column(ops: Sequence[Op], field: int) -> memoryview:
    """One field of every operation as int64s, read-only: a copy in ``bytes``, which nothing
    can change after ``ReplayLoop`` checked it."""
    return memoryview(array("q", [min(op[field], VALUE_LIMIT) for op in ops]).tobytes()).cast("q")


def _table(ids: int, value: int) -> memoryview:
    """A writable int64 table of ``ids`` entries; its length cannot change (the view pins it)."""
    return memoryview(array("q", [value]) * ids)


@cython.cclass
class ReplayLoop:
    """A replay in progress: the trace as columns, each ID's offset and size, the high-water
    mark (and the operation that last raised it) and the operations that failed.

    Every operation's ID is checked below ``ids`` here, once: the columns are immutable and the
    tables cannot change length, so ``run`` indexes them without checks."""

    def __init__(self, ops: Sequence[Op], ids: int, alg: MemoryAlgorithm, buf: memoryview) -> None:
        self.codes = _column(ops, 0)
        self.idents = _column(ops, 1)
        self.sizes = _column(ops, 2)
        self.aligns = _column(ops, 3)
        for index, ident in enumerate(self.idents):
            if not 0 <= ident < ids:
                raise ValueError(f"operation {index}: ID {ident} is not below {ids}")
        self.offsets = _table(ids, UNBOUND)
        self.held = _table(ids, 0)
        self.alg = alg
        self.kernel = kernel_of(alg, DRIVEN_METHODS)
        self.buf = buf
        self.limit = len(buf)
        self.high_water = 0
        #: index of the operation that last raised the high-water mark (-1: none yet)
        self.raised_at = -1
        #: indexes of the failed operations, in order (the caller may clear it)
        self.failed = list[int]()

    # -- the algorithm's operations: the kernel's C methods, or the Python methods ---------
    def allocate(self, size: cython.Py_ssize_t, align: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """A new block's offset, or -1."""
        if self.kernel is not None:
            if size > self.limit or align > self.limit:
                return -1
            if align:
                return self.kernel.kernel_allocate_aligned(size, align)
            return self.kernel.kernel_allocate(size)
        off = self.alg.allocate_aligned(size, align) if align else self.alg.allocate(size)
        return -1 if off is None else off

    def deallocate(self, off: cython.Py_ssize_t) -> cython.int:
        if self.kernel is not None:
            self.kernel.kernel_deallocate(off)
        else:
            self.alg.deallocate(off)
        return 0

    def shrink(self, off: cython.Py_ssize_t, old: cython.Py_ssize_t,
               size: cython.Py_ssize_t) -> cython.int:
        """Shrink in place when the algorithm can (the block is kept either way)."""
        if self.kernel is not None:
            self.kernel.kernel_command(SHRINK, old, size, off)
        else:
            self.alg.allocation_command(Command.SHRINK_IN_PLACE, old, size, off)
        return 0

    def expand(self, off: cython.Py_ssize_t, size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """Expand forward in place: the block's offset, or -1."""
        if self.kernel is not None:
            if size > self.limit:
                return -1
            return self.kernel.kernel_command(EXPAND, size, size, off)
        new, _ = self.alg.allocation_command(Command.EXPAND_FWD, size, size, off)
        return -1 if new is None else new

    def reallocate(self, off: cython.Py_ssize_t, old: cython.Py_ssize_t,
                   size: cython.Py_ssize_t) -> cython.Py_ssize_t:
        """The replay's ``r``: shrink in place, or expand forward, or move (allocate, copy,
        free the old block); the block's offset afterwards, or -1 when it could not grow."""
        if size <= old:
            self.shrink(off, old, size)
            return off
        new: cython.Py_ssize_t = self.expand(off, size)
        if new >= 0:
            return new
        new = self.allocate(size, 0)
        if new < 0:
            return -1
        self.buf[new : new + old] = self.buf[off : off + old]
        self.deallocate(off)
        return new

    # -- the loop ---------------------------------------------------------------------------
    def run(self, first: cython.Py_ssize_t, stop: cython.Py_ssize_t,
            spans: array[int] | None = None,
            deadline: cython.longlong = NO_DEADLINE) -> cython.Py_ssize_t:
        """Replay operations ``first`` to ``stop`` (trace indexes); the index it stopped at.
        With ``spans`` (an int64 array as long as the trace), ``spans[i]`` gets the nanoseconds
        operation i's algorithm calls took, clock cost included (``UNTIMED``: it made none).
        With a ``deadline`` (the thread's CPU clock, ``time.thread_time_ns``), it stops early
        at the first multiple of ``BUDGET_CHECK_OPS`` operations whose check finds the clock
        past it: the check runs inside the loop, between chunks of that many operations, so a
        budget adds no trip through Python to the timed work and no test to each operation.

        The loop's indexes are in bounds by the checks before it (compiled, it runs without
        bounds checks): ``index`` within every column and ``spans``, each ID within the offset
        and size tables (checked by ``__init__``)."""
        codes: cython.const[cython.longlong][::1] = self.codes
        idents: cython.const[cython.longlong][::1] = self.idents
        sizes: cython.const[cython.longlong][::1] = self.sizes
        aligns: cython.const[cython.longlong][::1] = self.aligns
        offsets: cython.longlong[::1] = self.offsets
        held: cython.longlong[::1] = self.held
        timing: cython.bint = spans is not None
        timed: cython.longlong[::1] = spans if timing else self.held  # held: never written
        high_water: cython.Py_ssize_t = self.high_water
        raised_at: cython.Py_ssize_t = self.raised_at
        before: cython.longlong = 0
        check_every: cython.Py_ssize_t = BUDGET_CHECK_OPS  # one lookup of the Python names
        budgeted: cython.bint = deadline != NO_DEADLINE
        reached: cython.Py_ssize_t = stop
        index: cython.Py_ssize_t
        if not 0 <= first <= stop <= len(codes) or timing and stop > len(timed):
            raise IndexError(f"operations {first} to {stop} are not all in the trace and spans")
        chunk: cython.Py_ssize_t = first
        # every index checked just above; the memoryviews are all set
        with cython.boundscheck(False), cython.initializedcheck(False):
            while chunk < stop:  # the budget is checked between chunks, not on every operation
                if budgeted and chunk > first and cpu_now_ns() > deadline:
                    reached = chunk
                    break
                chunk_stop: cython.Py_ssize_t = min(stop, chunk - chunk % check_every + check_every)
                for index in range(chunk, chunk_stop):
                    code: cython.Py_ssize_t = codes[index]
                    ident: cython.Py_ssize_t = idents[index]
                    size: cython.Py_ssize_t = sizes[index]
                    off: cython.Py_ssize_t = offsets[ident]
                    if code != ALLOC_OP and off < 0:
                        if timing:
                            timed[index] = UNTIMED
                        continue
                    if timing:
                        before = now_ns()
                    if code == ALLOC_OP:
                        off = self.allocate(size, aligns[index])
                    elif code == FREE_OP:
                        self.deallocate(off)
                        off = UNBOUND
                    else:
                        off = self.reallocate(off, held[ident], size)
                    if timing:
                        timed[index] = now_ns() - before
                    if code == FREE_OP:
                        offsets[ident] = UNBOUND
                        continue
                    if off < 0:  # a failed allocation, or a reallocation that could not grow
                        self.failed.append(index)
                        continue
                    if code == ALLOC_OP or size > held[ident]:
                        if off + size > high_water:
                            high_water, raised_at = off + size, index
                    offsets[ident] = off
                    held[ident] = size
                chunk = chunk_stop
        self.high_water, self.raised_at = high_water, raised_at
        return reached
