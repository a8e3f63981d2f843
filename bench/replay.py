"""Replaying a trace on one algorithm, with DESIGN.md's rules and metrics.

Rules, identical for every algorithm: a failed ``a`` is counted and its ID stays unbound (later
operations on it are skipped); ``r`` to a smaller size tries ``SHRINK_IN_PLACE`` and keeps the
block if that fails; ``r`` to a larger size tries ``EXPAND_FWD``, then allocates anew, copies
and frees the old block (a failure there is counted and the old block kept).

The timed loop calls the algorithm's bound methods directly (no segment-manager checks), so
``ns_per_op`` measures the algorithm plus a lean driver. The free-block census for
``frag_at_peak`` is taken, untimed, after the operation at which the trace's live bytes peak.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.traces import ALLOC, FREE, Op, Trace
from framework import Command, MemoryAlgorithm, plugins
from framework.managed import managed_class

__all__ = ["ReplayResult", "default_segment_size", "fragmentation", "replay", "replay_trace"]

_SHRINK = Command.SHRINK_IN_PLACE
_EXPAND = Command.EXPAND_FWD
MIB = 1 << 20


@dataclass(frozen=True)
class ReplayResult:
    """DESIGN.md's replay metrics (the JSON keys of ``segalloc replay --json``)."""

    ops: int
    seconds: float
    ns_per_op: float
    peak_live: int
    high_water: int
    footprint_ratio: float
    failures: int
    frag_at_peak: float
    first_failure_utilisation: float | None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def fragmentation(algorithm: MemoryAlgorithm) -> float:
    """1 - largest free block / total free (0 when nothing is free)."""
    largest = total = 0
    for _, size in algorithm.free_blocks():
        total += size
        largest = max(largest, size)
    return 1.0 - largest / total if total else 0.0


class _State:
    """The replay's running figures, shared by the two halves of the timed loop."""

    def __init__(self, ids: int) -> None:
        self.offsets: list[int | None] = [None] * ids
        self.sizes = [0] * ids
        self.live = self.peak = self.high_water = self.failures = 0
        self.first_failure_live: int | None = None


def _run(ops: list[Op], alg: MemoryAlgorithm, buf: memoryview, state: _State) -> None:
    """The hot loop: everything read once into locals."""
    allocate = alg.allocate
    allocate_aligned = alg.allocate_aligned
    deallocate = alg.deallocate
    command = alg.allocation_command
    offsets, sizes = state.offsets, state.sizes
    live, peak, high_water, failures = state.live, state.peak, state.high_water, state.failures
    first_failure_live = state.first_failure_live
    for code, ident, size, align in ops:
        if code == ALLOC:
            off = allocate_aligned(size, align) if align else allocate(size)
            if off is None:
                failures += 1
                if first_failure_live is None:
                    first_failure_live = live
                continue
            offsets[ident] = off
            sizes[ident] = size
            live += size
            if live > peak:
                peak = live
            if off + size > high_water:
                high_water = off + size
        elif code == FREE:
            off = offsets[ident]
            if off is None:
                continue
            deallocate(off)
            offsets[ident] = None
            live -= sizes[ident]
        else:
            off = offsets[ident]
            if off is None:
                continue
            old = sizes[ident]
            if size <= old:
                command(_SHRINK, old, size, off)
            else:
                new, _ = command(_EXPAND, size, size, off)
                if new is None:
                    new = allocate(size)
                    if new is None:
                        failures += 1
                        if first_failure_live is None:
                            first_failure_live = live
                        continue
                    buf[new : new + old] = buf[off : off + old]
                    deallocate(off)
                    offsets[ident] = new
                off = new
                if off + size > high_water:
                    high_water = off + size
            sizes[ident] = size
            live += size - old
            if live > peak:
                peak = live
    state.live, state.peak, state.high_water, state.failures = live, peak, high_water, failures
    state.first_failure_live = first_failure_live


def replay(trace: Trace, alg: MemoryAlgorithm, buf: memoryview, segment_size: int) -> ReplayResult:
    """Replay ``trace`` on a freshly formatted ``alg`` bound to ``buf``."""
    state = _State(trace.ids)
    split = trace.peak_index + 1
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        _run(trace.ops[:split], alg, buf, state)
        t1 = time.perf_counter_ns()
        frag = fragmentation(alg)
        t2 = time.perf_counter_ns()
        _run(trace.ops[split:], alg, buf, state)
        t3 = time.perf_counter_ns()
    finally:
        if enabled:
            gc.enable()
    ops = len(trace.ops)
    elapsed = (t1 - t0) + (t3 - t2)
    return ReplayResult(
        ops=ops,
        seconds=elapsed / 1e9,
        ns_per_op=elapsed / ops if ops else 0.0,
        peak_live=state.peak,
        high_water=state.high_water,
        footprint_ratio=state.high_water / state.peak if state.peak else 0.0,
        failures=state.failures,
        frag_at_peak=frag,
        first_failure_utilisation=(
            None if state.first_failure_live is None else state.first_failure_live / segment_size
        ),
    )


def default_segment_size(trace: Trace) -> int:
    """A segment comfortably larger than the trace's peak: 4x peak plus 1 MiB, in whole MiB."""
    wanted = 4 * trace.peak_live + MIB
    return -(-wanted // MIB) * MIB


def replay_trace(
    trace: Trace,
    algorithm: str,
    segment_size: int | None = None,
    backend: str = "heap",
    make_args: Callable[[int], tuple[Any, ...]] | None = None,
) -> ReplayResult:
    """Replay on a new segment of ``backend`` (heap by default) using ``algorithm``."""
    size = segment_size or default_segment_size(trace)
    cls = managed_class(plugins().backend(backend))
    args = make_args(size) if make_args else (size,)
    with cls(*args, algorithm=algorithm) as segment:
        return replay(trace, segment.algorithm, segment.buffer, size)
