"""Replaying a trace on one algorithm, with the replay rules and metrics of docs/architecture.md.

Rules, identical for every algorithm: a failed ``a`` is counted and its ID stays unbound (later
operations on it are skipped); ``r`` to a smaller size tries ``SHRINK_IN_PLACE`` and keeps the
block if that fails; ``r`` to a larger size tries ``EXPAND_FWD``, then allocates anew, copies
and frees the old block (a failure there is counted and the old block kept).

The timed loop (``segalloc.bench.replay_loop``, compiled) runs over the trace as C arrays and
does only what the rules need: it keeps each ID's offset and size in C tables, copies on a
moved reallocation, raises the high-water mark and notes which operations failed; it calls a
compiled algorithm's C entry points (``segalloc.kernel``) and any other algorithm's Python
methods (no segment-manager checks, lock or journal either way: ``fresh_allocator``). So
``ns_per_op`` measures the algorithm plus a lean driver, the same for every algorithm of a kind;
the clock is read around each chunk only.
Live bytes, their peak and the live blocks are accounted after each timed
chunk, untimed, from the trace and the noted failures. The free-block census for
``frag_at_peak`` is taken, untimed, after the operation at which the trace's live bytes peak.
With ``samples`` the trace runs in that many timed chunks and, untimed between them, the replay
records live bytes, high-water, Sawicki's free-space spread and the largest free block
(``Observations.timeline``), so sampling costs the timed loop nothing but the chunk boundaries.
Per-operation latency and word traffic are measured by further replays through the same
loop (``segalloc.bench.probes``), never in the timed replay.
"""

from __future__ import annotations

import gc
import mmap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from segalloc import MemoryAlgorithm, plugins
from segalloc.bench.metrics import largest_free_fraction, sawicki_spread
from segalloc.bench.replay_loop import NO_DEADLINE, ReplayLoop
from segalloc.bench.traces import ALLOC, FREE, Op, Trace
from segalloc.header import HEADER_SIZE
from segalloc.managed import managed_class

__all__ = [
    "Observations",
    "ReplayResult",
    "Sample",
    "default_segment_size",
    "fragmentation",
    "fresh_allocator",
    "median_index",
    "median_run",
    "replay",
    "replay_trace",
]

MIB = 1 << 20


@dataclass(frozen=True)
class Sample:
    """The state after ``op`` operations (taken between timed chunks)."""

    op: int
    live: int
    high_water: int
    #: Sawicki's free-space spread at that moment
    spread: float
    #: the largest free block (bytes) at that moment
    largest_free: int = 0


@dataclass(frozen=True)
class Observations:
    """What the replay saw beyond the replay metrics, for ``segalloc.bench.metrics``."""

    #: live requested bytes and live blocks when the high-water mark was last raised
    live_at_high_water: int
    blocks_at_high_water: int
    #: mean bytes a live block costs beyond its request (header + rounding), measured at the
    #: first census (peak or sample point) after the high-water mark last rose
    overhead_per_block: float
    #: sizes of the free blocks at the peak, in address order
    free_sizes_at_peak: tuple[int, ...]
    timeline: tuple[Sample, ...]
    #: operations replayed when a time budget stopped the replay (None: it ran to the end)
    stopped_at: int | None = None
    #: ns/op of each replay this result was chosen from, in run order (``median_run``; a
    #: single replay: its own)
    ns_per_op_runs: tuple[float, ...] = ()
    #: the replay's thread CPU time per operation: what the timed loop cost without the time
    #: the process waited for a core (a shared machine's main noise); compare judges by it
    cpu_ns_per_op: float = 0.0


@dataclass(frozen=True)
class ReplayResult:
    """The replay metrics (the JSON keys of ``segalloc replay --json``; docs/architecture.md)."""

    ops: int
    seconds: float
    ns_per_op: float
    peak_live: int
    high_water: int
    footprint_ratio: float
    failures: int
    frag_at_peak: float
    first_failure_utilisation: float | None
    observations: Observations | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the replay metrics (observations left out)."""
        figures = asdict(self)
        del figures["observations"]
        return figures


def fragmentation(algorithm: MemoryAlgorithm) -> float:
    """1 - largest free block / total free (0 when nothing is free)."""
    return largest_free_fraction(size for _, size in algorithm.free_blocks())


class _State:
    """The figures ``_account`` derives, between chunks, from the timed loop's outcomes (the
    loop's ``failed`` and ``raised_at``)."""

    def __init__(self, ids: int) -> None:
        self.live_sizes: list[int | None] = [None] * ids  # None: the ID holds no block
        self.live = self.peak = self.blocks = self.failures = 0
        self.live_at_high_water = self.blocks_at_high_water = 0
        self.first_failure_live: int | None = None


def _account(ops: list[Op], first: int, state: _State, loop: ReplayLoop) -> None:
    """Live bytes, their peak, live blocks and failures over the chunk just timed, untimed:
    the same rules as the timed loop, with its outcomes (which operations failed)."""
    failed = set(loop.failed)
    loop.failed.clear()
    live_sizes = state.live_sizes
    live, peak, blocks, failures = state.live, state.peak, state.blocks, state.failures
    first_failure_live = state.first_failure_live
    for index, (code, ident, size, _) in enumerate(ops, first):
        held = live_sizes[ident]
        if index in failed:
            failures += 1
            if first_failure_live is None:
                first_failure_live = live
            continue
        if code == ALLOC:
            live_sizes[ident] = size
            live += size
            blocks += 1
        elif held is None:
            continue
        elif code == FREE:
            live_sizes[ident] = None
            live -= held
            blocks -= 1
        else:
            live_sizes[ident] = size
            live += size - held
        if live > peak:
            peak = live
        if index == loop.raised_at:
            state.live_at_high_water, state.blocks_at_high_water = live, blocks
    state.live, state.peak, state.blocks, state.failures = live, peak, blocks, failures
    state.first_failure_live = first_failure_live


def _overhead_per_block(alg: MemoryAlgorithm, live: int) -> float:
    """Mean bytes a live block costs beyond its request: header and rounding."""
    count = usable = 0
    for _, size in alg.allocated_blocks():
        count += 1
        usable += size
    return (usable + count * alg.PAYLOAD_PER_ALLOCATION - live) / count if count else 0.0


def _split_points(ops: int, peak_split: int, samples: int) -> list[int]:
    """Chunk ends: the peak census point, the sample points and the end (a budget is checked
    inside the timed loop, which adds no chunk)."""
    points = {peak_split, ops} | {ops * k // samples for k in range(1, samples + 1)}
    return sorted(point for point in points if 0 < point <= ops)


def replay(
    trace: Trace,
    alg: MemoryAlgorithm,
    buf: memoryview,
    segment_size: int,
    samples: int = 0,
    budget_seconds: float | None = None,
) -> ReplayResult:
    """Replay ``trace`` on a freshly formatted ``alg`` bound to ``buf``.

    ``samples`` > 0 records that many evenly spaced ``Sample``s in ``observations.timeline``.
    ``budget_seconds`` stops the replay at the first check past that much timed work, in CPU
    time of the replay (a slow algorithm must not hold a sweep hostage; a busy machine must not
    turn a fast one into a timeout); ``observations.stopped_at`` then says where, and
    the figures are those of the operations replayed.
    """
    state = _State(trace.ids)
    ops = trace.ops
    loop = ReplayLoop(ops, trace.ids, alg, buf)
    touch_pages(buf)
    peak_split = trace.peak_index + 1
    sample_points = {len(ops) * k // samples for k in range(1, samples + 1)} if samples else set()
    budget_ns = None if budget_seconds is None else budget_seconds * 1e9
    free_at_peak: tuple[int, ...] = ()
    overhead = 0.0
    censused_high_water = -1
    timeline: list[Sample] = []
    elapsed = cpu = start = 0
    stopped_at: int | None = None
    enabled = gc.isenabled()
    gc.disable()
    try:
        for stop in _split_points(len(ops), peak_split, samples):
            c0 = time.thread_time_ns()
            deadline = NO_DEADLINE if budget_ns is None else c0 + max(0, int(budget_ns) - cpu)
            t0 = time.perf_counter_ns()
            reached = loop.run(start, stop, None, deadline)
            elapsed += time.perf_counter_ns() - t0
            cpu += time.thread_time_ns() - c0
            _account(ops[start:reached], start, state, loop)
            start = reached
            if reached < stop:
                stopped_at = reached
                break
            if stop == peak_split:
                free_at_peak = tuple(size for _, size in alg.free_blocks())
            if (stop == peak_split or stop in sample_points) and (
                    loop.high_water != censused_high_water):
                overhead = _overhead_per_block(alg, state.live)
                censused_high_water = loop.high_water
            if stop in sample_points:
                free = [size for _, size in alg.free_blocks()]
                timeline.append(Sample(stop, state.live, loop.high_water, sawicki_spread(free),
                                       max(free, default=0)))
    finally:
        if enabled:
            gc.enable()
    count = start
    ns_per_op = elapsed / count if count else 0.0
    return ReplayResult(
        ops=count,
        seconds=elapsed / 1e9,
        ns_per_op=ns_per_op,
        peak_live=state.peak,
        high_water=loop.high_water,
        footprint_ratio=loop.high_water / state.peak if state.peak else 0.0,
        failures=state.failures,
        frag_at_peak=largest_free_fraction(free_at_peak),
        first_failure_utilisation=(
            None if state.first_failure_live is None else state.first_failure_live / segment_size
        ),
        observations=Observations(
            live_at_high_water=state.live_at_high_water,
            blocks_at_high_water=state.blocks_at_high_water,
            overhead_per_block=overhead,
            free_sizes_at_peak=free_at_peak,
            timeline=tuple(timeline),
            stopped_at=stopped_at,
            ns_per_op_runs=(ns_per_op,),
            cpu_ns_per_op=cpu / count if count else 0.0,
        ),
    )


def median_index(timings: Sequence[float]) -> int:
    """Index of the median of repeated timings (the lower middle of an even count): one slow
    moment of a shared machine does not make the figure, nor one lucky one."""
    if not timings:
        raise ValueError("a median needs at least one timing")
    return sorted(range(len(timings)), key=timings.__getitem__)[(len(timings) - 1) // 2]


def median_run(results: Sequence[ReplayResult]) -> ReplayResult:
    """Of repeated replays of one load, the one of median ns/op, its observations noting every
    run's ns/op (the other figures of a deterministic algorithm are the same in every run)."""
    chosen = results[median_index([result.ns_per_op for result in results])]
    assert chosen.observations is not None, "replay always records observations"
    runs = tuple(result.ns_per_op for result in results)
    return replace(chosen, observations=replace(chosen.observations, ns_per_op_runs=runs))


def default_segment_size(trace: Trace) -> int:
    """A segment comfortably larger than the trace's peak: 4x peak plus 1 MiB, in whole MiB."""
    wanted = 4 * trace.peak_live + MIB
    return -(-wanted // MIB) * MIB


def replay_trace(
    trace: Trace,
    algorithm: str,
    segment_size: int | None = None,
    backend: str = "heap",
    segment_args: tuple[Any, ...] | None = None,
    samples: int = 0,
    budget_seconds: float | None = None,
) -> ReplayResult:
    """Replay on a new segment of ``backend`` (heap by default) using ``algorithm``, made
    from ``segment_args`` (the managed class's arguments; default ``(segment_size,)``)."""
    size = segment_size or default_segment_size(trace)
    with fresh_allocator(algorithm, size, backend, segment_args) as (alg, buf):
        return replay(trace, alg, buf, size, samples, budget_seconds)


def touch_pages(buf: memoryview) -> None:
    """Write the first byte of every page of ``buf`` with its own value: the bytes stay as they
    are, but the timed loop takes no first-touch page faults. Boost's replayer zeroes its
    buffer before its clock starts for the same reason; without this, our side of the
    comparison would count the kernel's page faults (several ns an operation on sqlite) and
    Boost's would not."""
    view = memoryview(buf).cast("B")
    if not view.readonly:
        view[:: mmap.PAGESIZE] = bytes(view[:: mmap.PAGESIZE])


@contextmanager
def fresh_allocator(algorithm: str, size: int, backend: str = "heap",
                    segment_args: tuple[Any, ...] | None = None
                    ) -> Iterator[tuple[MemoryAlgorithm, memoryview]]:
    """``algorithm`` formatted afresh over the region of a new managed segment of ``backend``
    (made from ``segment_args``, the managed class's arguments; default ``(size,)``), and the
    segment's bytes; closed on exit.

    The replay times the allocator alone, as Boost's replayer does: over the backend's memory,
    without the segment's lock and undo journal (whose base extent the format wipes, so every
    backend starts from the same region). The segment is scratch: never opened again."""
    cls = managed_class(plugins().backend(backend))
    with cls(*(segment_args or (size,)), algorithm=algorithm) as segment:
        buf = segment.buffer
        yield plugins().algorithm(algorithm).format(buf, HEADER_SIZE, len(buf) - HEADER_SIZE), buf
