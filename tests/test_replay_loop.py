"""The compiled replay loop against its interpreted build, and the replay rules it follows.

Both builds run in this process: the interpreted loop and algorithm are loaded from source
(``segalloc.bench.interpreted``), so ``replay`` is run once with the compiled loop on the
compiled algorithm (the kernel's C entry points; a pure-Python plugin through its methods) and
once with the interpreted loop on the interpreted algorithm, and every figure but the timings
and every byte of the segment must agree. Under ``SEGALLOC_PURE_PYTHON=1`` both sides are the
interpreted build and the rule tests below carry the weight.
"""

from __future__ import annotations

import gzip
import random
from array import array
from dataclasses import replace
from itertools import islice
from typing import Any

import pytest

from segalloc import plugins
from segalloc.bench import replay as replay_module
from segalloc.bench.interpreted import interpreted_class
from segalloc.bench.replay import ReplayResult, replay
from segalloc.bench.replay_loop import (
    BUDGET_CHECK_OPS,
    NO_DEADLINE,
    UNTIMED,
    VALUE_LIMIT,
    ReplayLoop,
)
from segalloc.bench.traces import ALLOC, FREE, REALLOC, Op, Trace, parse_lines
from segalloc.header import HEADER_SIZE
from segalloc.kernel import kernel_of

SHIPPED = replay_module.__file__.replace("replay.py", "data/sqlite.trace.gz")
#: a kernel algorithm, a pure-Python one of ours (until it is compiled) and a third party's
ALGORITHMS = ["segregated_fit", "best_fit", "implicit_fit"]


def random_trace(seed: int, count: int = 3000) -> Trace:
    """Allocations (some aligned), frees and reallocations up and down, sized to overflow a
    64 KiB segment now and then (so some allocations and moves fail)."""
    rng = random.Random(seed)
    lines, live, next_id = [], [], 0
    for _ in range(count):
        roll = rng.random()
        if live and roll < 0.35:
            lines.append(f"f {live.pop(rng.randrange(len(live)))}")
        elif live and roll < 0.55:
            lines.append(f"r {rng.choice(live)} {rng.choice([1, 24, 200, 3000, 9000])}")
        else:
            align = rng.choice(["", "", "", " 64", " 256"])
            lines.append(f"a {next_id} {rng.choice([0, 8, 40, 130, 1000, 5000])}{align}")
            live.append(next_id)
            next_id += 1
    return parse_lines(lines, f"random-{seed}")


def shipped_prefix(ops: int = 6000) -> Trace:
    """The first ``ops`` operations of the shipped sqlite trace, as a trace of their own."""
    with gzip.open(SHIPPED, "rt", encoding="ascii") as lines:
        return parse_lines(islice(lines, ops), "sqlite-prefix")


def _replay(trace: Trace, cls: type[Any], size: int, loop: type[Any],
            monkeypatch: pytest.MonkeyPatch) -> tuple[ReplayResult, bytes]:
    buf = memoryview(bytearray(size))
    alg = cls.format(buf, HEADER_SIZE, size - HEADER_SIZE)
    with monkeypatch.context() as patch:
        patch.setattr(replay_module, "ReplayLoop", loop)
        result = replay(trace, alg, buf, size, samples=5)
    return result, bytes(buf)


def _untimed(result: ReplayResult) -> tuple[dict[str, Any], Any]:
    figures = result.as_dict()
    del figures["ns_per_op"], figures["seconds"]
    assert result.observations is not None
    return figures, replace(result.observations, ns_per_op_runs=(), cpu_ns_per_op=0.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("load", ["random", "sqlite-prefix"])
def test_compiled_loop_matches_the_interpreted_one(algorithm: str, load: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    trace, size = (random_trace(7), 1 << 16) if load == "random" else (shipped_prefix(), 1 << 22)
    cls = plugins().algorithm(algorithm)
    compiled, compiled_bytes = _replay(trace, cls, size, ReplayLoop, monkeypatch)
    interpreted, interpreted_bytes = _replay(trace, interpreted_class(cls), size,
                                             interpreted_class(ReplayLoop), monkeypatch)
    assert _untimed(compiled) == _untimed(interpreted)
    assert compiled_bytes == interpreted_bytes
    assert compiled.peak_live > 0
    if load == "random":  # the trace is built to make some requests fail
        assert compiled.failures > 0


def test_kernels_are_driven_through_their_entry_points_others_through_their_methods() -> None:
    """A registered kernel algorithm runs through its C entry points (an instance attribute
    shadowing ``allocate`` is never called); a subclass that overrides ``allocate`` in Python,
    of a kernel algorithm or of a pure-Python plugin, is called through it."""
    trace = parse_lines(["a 0 24", "a 1 40", "f 0"])

    def replayed(alg: Any, buf: memoryview) -> ReplayLoop:
        loop = ReplayLoop(trace.ops, trace.ids, alg, buf)
        loop.run(0, 3)
        assert loop.offsets[0] == -1 and loop.offsets[1] > 0 and loop.failed == []
        return loop

    buf = memoryview(bytearray(4096))
    kernel = plugins().algorithm("segregated_fit").format(buf, HEADER_SIZE, 4096 - HEADER_SIZE)

    def refuse(size: int) -> None:
        raise AssertionError("the loop called the Python method of a kernel algorithm")

    kernel.allocate = refuse
    assert kernel_of(kernel) is kernel
    replayed(kernel, buf)

    calls: list[int] = []
    for base in ("segregated_fit", "implicit_fit"):

        class Counted(plugins().algorithm(base)):  # type: ignore[misc,valid-type]
            def allocate(self, size: int) -> int | None:
                calls.append(size)
                offset: int | None = super().allocate(size)
                return offset

        buf = memoryview(bytearray(4096))
        alg = Counted.format(buf, HEADER_SIZE, 4096 - HEADER_SIZE)
        assert kernel_of(alg) is None
        calls.clear()
        replayed(alg, buf)
        assert calls == [24, 40], base


@pytest.mark.parametrize("algorithm", ["segregated_fit", "best_fit", "sequential_fit"])
def test_a_subclass_wrapping_only_its_commands_is_called_through_them(algorithm: str) -> None:
    """The loop's reallocations and aligned allocations call the kernel's command entry points:
    a subclass that overrides only ``allocation_command`` or ``allocate_aligned`` in Python
    (and leaves ``allocate`` / ``deallocate`` alone) must be driven through those methods."""
    calls: list[str] = []

    class Wrapped(plugins().algorithm(algorithm)):  # type: ignore[misc,valid-type]
        def allocate_aligned(self, size: int, alignment: int) -> int | None:
            calls.append("allocate_aligned")
            offset: int | None = super().allocate_aligned(size, alignment)
            return offset

        def allocation_command(self, *args: Any) -> Any:
            calls.append("allocation_command")
            return super().allocation_command(*args)

    trace = parse_lines(["a 0 24 64", "a 1 40", "r 1 4000", "r 1 8"])
    buf = memoryview(bytearray(16384))
    alg = Wrapped.format(buf, HEADER_SIZE, len(buf) - HEADER_SIZE)
    loop = ReplayLoop(trace.ops, trace.ids, alg, buf)
    loop.run(0, len(trace.ops))
    assert loop.failed == []
    assert calls[0] == "allocate_aligned" and "allocation_command" in calls[1:]
    assert kernel_of(alg) is alg  # the segment's allocate / deallocate path keeps the kernel


def _loop(lines: list[str], algorithm: str, size: int = 4096) -> tuple[ReplayLoop, memoryview]:
    trace = parse_lines(lines)
    buf = memoryview(bytearray(size))
    alg = plugins().algorithm(algorithm).format(buf, HEADER_SIZE, size - HEADER_SIZE)
    return ReplayLoop(trace.ops, trace.ids, alg, buf), buf


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_failed_allocation_is_noted_and_its_id_stays_unbound(algorithm: str) -> None:
    loop, _ = _loop(["a 0 64", "a 1 100000", "r 1 8", "f 1", "a 2 1" + "0" * 20, "f 0"],
                    algorithm)
    spans = array("q", [0]) * 6
    loop.run(0, 6, spans)
    assert loop.failed == [1, 4]  # too large for 4 KiB; 10**20 is stored clamped
    assert spans[2] == spans[3] == UNTIMED  # realloc and free of the unbound ID: no call
    assert min(spans[0], spans[1], spans[4], spans[5]) >= 0
    assert list(loop.offsets) == [-1, -1, -1]
    assert loop.sizes[4] == min(10**20, VALUE_LIMIT)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_reallocation_that_cannot_grow_in_place_moves_and_copies(algorithm: str) -> None:
    loop, buf = _loop(["a 0 100", "a 1 100", "r 0 1000", "r 0 50", "r 1 100000"], algorithm)
    loop.run(0, 2)
    old, neighbour = loop.offsets[0], loop.offsets[1]
    buf[old : old + 100] = bytes(range(100))
    loop.run(2, 3)
    new = loop.offsets[0]
    assert new != old and bytes(buf[new : new + 100]) == bytes(range(100))
    assert loop.held[0] == 1000 and loop.high_water >= new + 1000
    assert (loop.raised_at, loop.failed) == (2, [])
    high_water = loop.high_water
    loop.run(3, 5)  # a shrink keeps the block; a growth beyond the segment fails, kept too
    assert (loop.offsets[0], loop.held[0]) == (new, 50)
    assert (loop.offsets[1], loop.held[1], loop.failed) == (neighbour, 100, [4])
    assert loop.high_water == high_water


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_passed_deadline_stops_the_loop_at_the_next_check(algorithm: str) -> None:
    count = 3 * BUDGET_CHECK_OPS
    lines = [f"a {i} 8" if i % 2 == 0 else f"f {i - 1}" for i in range(count)]
    loop, _ = _loop(lines, algorithm)
    first = BUDGET_CHECK_OPS // 2
    assert loop.run(0, first) == first
    reached = loop.run(first, count, None, 0)  # a deadline long past: the first check stops it
    assert reached == BUDGET_CHECK_OPS
    live = [ident for ident, off in enumerate(loop.offsets) if off >= 0]
    assert live == ([reached - 1] if reached % 2 else [])  # ops up to reached ran, none after
    assert loop.run(reached, count, None, NO_DEADLINE) == count


def test_op_columns_hold_the_trace() -> None:
    ops: list[Op] = [(ALLOC, 0, 24, 64), (REALLOC, 0, 48, 0), (FREE, 0, 0, 0)]
    buf = memoryview(bytearray(4096))
    alg = plugins().algorithm("best_fit").format(buf, HEADER_SIZE, 4096 - HEADER_SIZE)
    loop = ReplayLoop(ops, 1, alg, buf)
    assert [list(column) for column in (loop.codes, loop.idents, loop.sizes, loop.aligns)] == \
        [list(column) for column in zip(*ops)]
