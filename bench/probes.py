"""Instrumented replays beside the timed one: per-operation latency and word traffic.

The main replay (``segalloc.bench.replay``) times whole chunks, so nothing it measures is
disturbed by measuring single operations. Each probe here is a further replay of the same trace
under the same rules, on a new segment, reading a *probe* before and after every operation and
keeping the difference by operation kind:

- ``measure_latency``: the probe is ``time.perf_counter_ns``, read around the algorithm's calls
  only (not the driver's bookkeeping); the clock's own cost (the median of back-to-back
  readings) is subtracted from every sample. This is the interpreted stand-in for the compiled
  replay loop of issue 14: a compiled loop replaces ``probed_run`` and keeps the return shape.
- ``measure_cost``: the algorithm's ``words`` (every metadata word it reads or writes goes
  through it, framework/interfaces.py) is wrapped in a ``CountingWords`` view; the probe
  reads its counters. Word reads, writes and distinct 64-byte lines touched per operation are
  a deterministic cost: identical on every machine and run. Counting costs ~10x the replay, so
  it stops after the operation at which ``COST_ACCESS_BUDGET`` word accesses are reached (a
  deterministic prefix, the same everywhere; ``cost_ops`` says how many operations it covers).
  It also counts allocations that failed although the free blocks' total would have held the
  request (a failure from fragmentation, not from exhaustion).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segalloc import Command, MemoryAlgorithm
from segalloc.bench.traces import ALLOC, FREE, REALLOC, Op, Trace

__all__ = [
    "COST_ACCESS_BUDGET",
    "KIND_NAMES",
    "CostResult",
    "CountingWords",
    "clock_overhead_ns",
    "measure_cost",
    "measure_latency",
    "probed_run",
]

_SHRINK = Command.SHRINK_IN_PLACE
_EXPAND = Command.EXPAND_FWD
#: report names of the operation codes
KIND_NAMES = {ALLOC: "allocate", FREE: "free", REALLOC: "realloc"}
#: the cost probe stops after the operation at which this many word accesses are counted
COST_ACCESS_BUDGET = 3_000_000
#: a probe reading packs three counters; each field holds up to 2**FIELD_BITS - 1
_FIELD_BITS = 48
_FIELD_MASK = (1 << _FIELD_BITS) - 1
_LINE_SHIFT = 3  # 8 words of 8 bytes make a 64-byte line


class CountingWords:
    """A word view that counts the reads and writes through it and the 64-byte lines they
    touch, forwarding each to the real view (``__slots__``: a thin layer)."""

    __slots__ = ("_inner", "_lines", "_line_total", "reads", "writes")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lines: set[int] = set()
        self._line_total = 0
        self.reads = self.writes = 0

    def __len__(self) -> int:
        return len(self._inner)

    def _touch(self, index: Any) -> int:
        if isinstance(index, slice):
            span = range(*index.indices(len(self._inner)))
            self._lines.update({i >> _LINE_SHIFT for i in span})
            return len(span)
        self._lines.add(index >> _LINE_SHIFT)
        return 1

    def __getitem__(self, index: Any) -> Any:
        self.reads += self._touch(index)
        return self._inner[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self.writes += self._touch(index)
        self._inner[index] = value

    def reading(self) -> int:
        """The counters packed in one int (reads, writes, lines since the last reading
        summed), so a difference of two readings unpacks to the traffic between them."""
        self._line_total += len(self._lines)
        self._lines.clear()
        return self.reads | self.writes << _FIELD_BITS | self._line_total << 2 * _FIELD_BITS


def unpack(delta: int) -> tuple[int, int, int]:
    """(reads, writes, lines) of the difference of two ``CountingWords.reading()``s."""
    return (delta & _FIELD_MASK, delta >> _FIELD_BITS & _FIELD_MASK, delta >> 2 * _FIELD_BITS)


def probed_run(ops: list[Op], alg: MemoryAlgorithm, buf: memoryview, probe: Callable[[], int],
               on_failure: Callable[[int], None] | None = None,
               stop: Callable[[], bool] | None = None) -> dict[int, list[int]]:
    """Replay ``ops`` under the replay rules, keeping ``probe()`` after - before each
    operation's algorithm calls, by operation code. ``on_failure(size)`` runs (outside the
    probed span) after each failed allocation; ``stop()`` is asked after each operation and
    ends the run when true."""
    allocate, allocate_aligned = alg.allocate, alg.allocate_aligned
    deallocate, command = alg.deallocate, alg.allocation_command
    offsets: list[int | None] = [None] * (1 + max((op[1] for op in ops), default=-1))
    sizes = [0] * len(offsets)
    spans: dict[int, list[int]] = {ALLOC: [], FREE: [], REALLOC: []}
    allocs, frees, reallocs = spans[ALLOC].append, spans[FREE].append, spans[REALLOC].append
    for code, ident, size, align in ops:
        if code == ALLOC:
            before = probe()
            off = allocate_aligned(size, align) if align else allocate(size)
            allocs(probe() - before)
            if off is None:
                if on_failure is not None:
                    on_failure(size)
            else:
                offsets[ident], sizes[ident] = off, size
        elif code == FREE:
            off = offsets[ident]
            if off is None:
                continue
            before = probe()
            deallocate(off)
            frees(probe() - before)
            offsets[ident] = None
        else:
            off = offsets[ident]
            if off is None:
                continue
            old = sizes[ident]
            before = probe()
            new: int | None = off
            if size <= old:
                command(_SHRINK, old, size, off)
            else:
                new, _ = command(_EXPAND, size, size, off)
                if new is None:
                    new = allocate(size)
                    if new is not None:
                        buf[new : new + old] = buf[off : off + old]
                        deallocate(off)
            reallocs(probe() - before)
            if new is None:
                if on_failure is not None:
                    on_failure(size)
                continue
            offsets[ident], sizes[ident] = new, size
        if stop is not None and stop():
            break
    return spans


def clock_overhead_ns(readings: int = 2001) -> int:
    """The median cost of reading ``perf_counter_ns`` twice back to back (what a timed span
    of nothing measures)."""
    clock = time.perf_counter_ns
    gaps = []
    for _ in range(readings):
        start = clock()
        gaps.append(clock() - start)
    return int(statistics.median(gaps))


def measure_latency(trace: Trace, alg: MemoryAlgorithm, buf: memoryview,
                    budget_seconds: float | None = None) -> tuple[dict[str, list[int]], int]:
    """Nanoseconds of each operation, by kind (clock cost subtracted, floored at 0), and the
    clock cost subtracted; with a budget, stops after that much CPU time."""
    overhead = clock_overhead_ns()
    deadline = None if budget_seconds is None else time.thread_time() + budget_seconds
    stop = None if deadline is None else (lambda: time.thread_time() > deadline)
    enabled = gc.isenabled()
    gc.disable()
    try:
        spans = probed_run(trace.ops, alg, buf, time.perf_counter_ns, stop=_every(500, stop))
    finally:
        if enabled:
            gc.enable()
    return ({KIND_NAMES[code]: [max(0, span - overhead) for span in values]
             for code, values in spans.items() if values}, overhead)


def _every(period: int, stop: Callable[[], bool] | None) -> Callable[[], bool] | None:
    """``stop`` asked only every ``period`` calls (a clock read per operation would cost more
    than some operations)."""
    if stop is None:
        return None
    count = 0

    def sparse() -> bool:
        nonlocal count
        count += 1
        return count % period == 0 and stop()

    return sparse


@dataclass(frozen=True)
class CostResult:
    """Word traffic per operation of a counted prefix of the trace."""

    #: operations counted (the whole trace unless the access budget stopped it)
    ops: int
    #: per counted operation: reads + writes, reads, writes, distinct 64-byte lines
    words: list[int]
    reads: list[int]
    writes: list[int]
    lines: list[int]
    #: failed allocations whose request the free blocks' total would have held
    failures_with_enough_free: int


def measure_cost(trace: Trace, alg: MemoryAlgorithm, buf: memoryview,
                 access_budget: int = COST_ACCESS_BUDGET) -> CostResult:
    """Count the word traffic of each operation through a ``CountingWords`` view of ``alg``'s
    words (restored afterwards), up to ``access_budget`` accesses."""
    counting = CountingWords(alg.words)
    real = alg.words
    enough_free = 0

    def on_failure(size: int) -> None:
        nonlocal enough_free
        if sum(block for _, block in alg.free_blocks()) >= size:
            enough_free += 1

    alg.words = counting  # type: ignore[assignment]
    try:
        spans = probed_run(trace.ops, alg, buf, counting.reading, on_failure=on_failure,
                           stop=lambda: counting.reads + counting.writes >= access_budget)
    finally:
        alg.words = real
    deltas = [unpack(delta) for code in (ALLOC, FREE, REALLOC) for delta in spans[code]]
    return CostResult(
        ops=len(deltas),
        words=[reads + writes for reads, writes, _ in deltas],
        reads=[reads for reads, _, _ in deltas],
        writes=[writes for _, writes, _ in deltas],
        lines=[lines for _, _, lines in deltas],
        failures_with_enough_free=enough_free,
    )
