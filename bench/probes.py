"""Instrumented replays beside the timed one: per-operation latency and word traffic.

The main replay (``segalloc.bench.replay``) times whole chunks, so nothing it measures is
disturbed by measuring single operations. Each probe here is a further replay of the same trace
under the same rules, through the same loop (``segalloc.bench.replay_loop``), on a new segment,
keeping a figure of every operation by operation kind:

- ``measure_latency``: the compiled loop reads its C clock around each operation's algorithm
  calls (not the driver's bookkeeping); the clock's own cost (the median of back-to-back
  readings) is subtracted from every sample.
- ``measure_cost``: the algorithm's ``words`` (every metadata word it reads or writes goes
  through it, framework/interfaces.py) is wrapped in a ``CountingWords`` view, read before and
  after each operation. Word reads, writes and distinct 64-byte lines touched per operation
  are a deterministic cost: identical on every machine and run, and in both builds, which run
  the same source. A compiled algorithm reads its words through a typed C view the wrapper
  cannot see, so the probe counts its interpreted build (``segalloc.bench.interpreted``),
  attached to the same fresh segment, with the interpreted loop (which calls a kernel's
  entry points as the compiled one does). Counting costs ~10x an interpreted replay, so on a
  long trace it counts a sample: the trace is cut into ``COST_WINDOWS`` equal stretches, and
  each is counted from its start until ``COST_ACCESS_BUDGET / COST_WINDOWS`` word accesses are
  reached; the rest of the stretch is replayed uncounted by the compiled build on the same
  bytes (every figure an algorithm keeps lives there). Each counted operation stands for its
  stretch's share, so the mean is that of the whole trace, not of its (often cheaper) start;
  the max is the largest counted. ``cost_ops`` says how many operations were counted (all of
  them on a short trace). It also counts allocations that failed although the free blocks'
  total would have held the request (a failure from fragmentation, not from exhaustion), over
  the whole trace.
"""

from __future__ import annotations

import gc
import time
from array import array
from dataclasses import dataclass
from typing import Any

from segalloc import MemoryAlgorithm
from segalloc.bench.interpreted import interpreted_class
from segalloc.bench.replay_loop import UNTIMED, ReplayLoop, clock_cost_ns
from segalloc.bench.traces import ALLOC, FREE, REALLOC, Trace
from segalloc.header import HEADER_SIZE

__all__ = [
    "COST_ACCESS_BUDGET",
    "COST_WINDOWS",
    "KIND_NAMES",
    "LATENCY_CHUNK",
    "CostResult",
    "CountingWords",
    "measure_cost",
    "measure_latency",
]

#: report names of the operation codes
KIND_NAMES = {ALLOC: "allocate", FREE: "free", REALLOC: "realloc"}
#: word accesses the cost probe counts, at most (plus one operation a window)
COST_ACCESS_BUDGET = 3_000_000
#: stretches of the trace the cost probe counts a part of, each its share of the budget
COST_WINDOWS = 20
#: a probe reading packs three counters; each field holds up to 2**FIELD_BITS - 1
_FIELD_BITS = 48
_FIELD_MASK = (1 << _FIELD_BITS) - 1
_LINE_SHIFT = 3  # 8 words of 8 bytes make a 64-byte line
#: with a time budget, the latency probe checks the CPU clock after every this many operations
LATENCY_CHUNK = 500


class CountingWords:
    """A word view that counts the reads and writes through it (``words[i]``, ``signed[i]``,
    ``words[i] = v``, ``store(i, v)``) and the 64-byte lines they touch, forwarding each to
    the real view (``__slots__``: a thin layer)."""

    __slots__ = ("_inner", "_lines", "_line_total", "reads", "writes", "signed")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lines: set[int] = set()
        self._line_total = 0
        self.reads = self.writes = 0
        #: the signed view, counted alike
        self.signed = _CountedReads(self, getattr(inner, "signed", inner))

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

    def store(self, index: int, value: int) -> None:
        self.writes += self._touch(index)
        self._inner.store(index, value)

    #: the algorithms' name for ``store`` (``Words.put``, inline C when compiled)
    put = store

    def reading(self) -> int:
        """The counters packed in one int (reads, writes, lines since the last reading
        summed), so a difference of two readings unpacks to the traffic between them."""
        self._line_total += len(self._lines)
        self._lines.clear()
        return self.reads | self.writes << _FIELD_BITS | self._line_total << 2 * _FIELD_BITS


class _CountedReads:
    """``CountingWords.signed``: reads of the signed view, counted by its ``CountingWords``."""

    __slots__ = ("_counter", "_view")

    def __init__(self, counter: CountingWords, view: Any) -> None:
        self._counter, self._view = counter, view

    def __len__(self) -> int:
        return len(self._view)

    def __getitem__(self, index: Any) -> Any:
        self._counter.reads += self._counter._touch(index)
        return self._view[index]


def unpack(delta: int) -> tuple[int, int, int]:
    """(reads, writes, lines) of the difference of two ``CountingWords.reading()``s."""
    return (delta & _FIELD_MASK, delta >> _FIELD_BITS & _FIELD_MASK, delta >> 2 * _FIELD_BITS)


def measure_latency(trace: Trace, alg: MemoryAlgorithm, buf: memoryview,
                    budget_seconds: float | None = None) -> tuple[dict[str, list[int]], int]:
    """Nanoseconds of each operation, by kind (clock cost subtracted, floored at 0), and the
    clock cost subtracted; with a budget, stops after that much CPU time."""
    overhead = clock_cost_ns()
    loop = ReplayLoop(trace.ops, trace.ids, alg, buf)
    spans = array("q", [UNTIMED]) * len(trace.ops)
    deadline = None if budget_seconds is None else time.thread_time() + budget_seconds
    end = 0
    enabled = gc.isenabled()
    gc.disable()
    try:
        for start in range(0, len(trace.ops), LATENCY_CHUNK):
            end = min(start + LATENCY_CHUNK, len(trace.ops))
            loop.run(start, end, spans)
            if deadline is not None and time.thread_time() > deadline:
                break
    finally:
        if enabled:
            gc.enable()
    kinds: dict[str, list[int]] = {}
    for (code, *_), span in zip(trace.ops[:end], spans):
        if span != UNTIMED:
            kinds.setdefault(KIND_NAMES[code], []).append(max(0, span - overhead))
    return kinds, overhead


@dataclass(frozen=True)
class CostResult:
    """Word traffic per counted operation (``COST_WINDOWS`` samples of the trace, or all of it),
    each with the number of the trace's operations it stands for."""

    #: operations counted
    ops: int
    #: per counted operation: reads + writes, reads, writes, distinct 64-byte lines
    words: list[int]
    reads: list[int]
    writes: list[int]
    lines: list[int]
    #: per counted operation: the operations of its stretch it stands for (1 when all counted)
    weights: list[float]
    #: failed allocations whose request the free blocks' total would have held
    failures_with_enough_free: int


def _failed_with_enough_free(loop: Any, alg: Any, size: int) -> int:
    """1 when the operation ``loop`` just replayed failed although the free blocks of ``alg``
    held ``size`` bytes in all (the loop's failure list is cleared)."""
    if not loop.failed:
        return 0
    loop.failed.clear()
    return int(sum(block for _, block in alg.free_blocks()) >= size)


def measure_cost(trace: Trace, alg: MemoryAlgorithm, buf: memoryview,
                 access_budget: int = COST_ACCESS_BUDGET, start: int = HEADER_SIZE) -> CostResult:
    """Count the word traffic of operations through a ``CountingWords`` view of the words of
    ``alg`` (freshly formatted on ``buf`` at ``start``, where a segment puts its algorithm), about
    ``access_budget`` accesses spread over the trace's ``COST_WINDOWS`` stretches. A compiled
    ``alg`` is counted on its interpreted build attached to the same bytes and runs the
    uncounted operations itself; any other gets the view for its counted operations."""
    twin = interpreted_class(type(alg))
    # the interpreted build's class is loaded at run time: no static type to give it
    probed: Any = alg if twin is type(alg) else twin.attach(buf, start)
    real = probed.words
    counting = CountingWords(real)
    ops = trace.ops
    fast = ReplayLoop(ops, trace.ids, alg, buf)
    # the interpreted loop with an interpreted algorithm: kernels called as the timed loop
    # calls them (their Python methods may read words of their own, e.g. a usable size)
    counted = interpreted_class(ReplayLoop)(ops, trace.ids, probed, buf)
    counted.offsets, counted.held = fast.offsets, fast.held  # one table: either loop goes on
    called = array("q", [UNTIMED]) * len(ops)  # UNTIMED: an unbound ID, no algorithm call
    share = max(1, access_budget // COST_WINDOWS)
    deltas: list[tuple[int, int, int]] = []
    weights: list[float] = []
    enough_free = 0
    bounds = [len(ops) * window // COST_WINDOWS for window in range(COST_WINDOWS + 1)]
    for first, stop in zip(bounds, bounds[1:]):
        index, window = first, len(deltas)
        probed.words = counting
        try:
            spent = counting.reads + counting.writes + share
            while index < stop and counting.reads + counting.writes < spent:
                before = counting.reading()
                counted.run(index, index + 1, called)
                if called[index] != UNTIMED:
                    deltas.append(unpack(counting.reading() - before))
                    enough_free += _failed_with_enough_free(counted, probed, ops[index][2])
                index += 1
        finally:
            probed.words = real
        for rest in range(index, stop):
            fast.run(rest, rest + 1, called)
            enough_free += _failed_with_enough_free(fast, alg, ops[rest][2])
        if len(deltas) > window:
            calls = sum(called[i] != UNTIMED for i in range(first, stop))
            weights += [calls / (len(deltas) - window)] * (len(deltas) - window)
    return CostResult(
        ops=len(deltas),
        words=[reads + writes for reads, writes, _ in deltas],
        reads=[reads for reads, _, _ in deltas],
        writes=[writes for _, writes, _ in deltas],
        lines=[lines for _, _, lines in deltas],
        weights=weights,
        failures_with_enough_free=enough_free,
    )
