"""The harness's metrics on a hand-made trace whose every figure is worked out by hand.

The replay runs on ``ToyFirstFit``, a test double with no headers and 16-byte rounding whose
placements are easy to follow, so each expected figure below is plain arithmetic (the
comments show it). Real algorithms are checked for invariants that hold whatever their layout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segalloc import Command, plugins
from segalloc.bench import metrics
from segalloc.bench.probes import CountingWords, measure_cost, measure_latency
from segalloc.bench.replay import replay, replay_trace
from segalloc.bench.runner import cell_figures
from segalloc.bench.traces import ALLOC, FREE, REALLOC, Trace, parse_lines
from segalloc.bench.workloads import workload_trace

SEGMENT = 1024


class ToyFirstFit:
    """First fit over ``[0, SEGMENT)`` in 16-byte units, no headers (a test double: it keeps
    its lists in Python, which a real algorithm may not)."""

    PAYLOAD_PER_ALLOCATION = 0

    def __init__(self) -> None:
        self.free: list[list[int]] = [[0, SEGMENT]]  # [offset, size], address order
        self.used: dict[int, int] = {}

    def allocate(self, size: int) -> int | None:
        need = -(-max(size, 1) // 16) * 16
        for block in self.free:
            if block[1] >= need:
                offset = block[0]
                block[0] += need
                block[1] -= need
                self.free = [b for b in self.free if b[1]]
                self.used[offset] = need
                return offset
        return None

    def allocate_aligned(self, size: int, alignment: int) -> int | None:
        raise AssertionError("not used by these traces")

    def allocation_command(self, command: Command, limit: int, preferred: int,
                           reuse: int) -> tuple[int | None, int]:
        return None, 0

    def deallocate(self, offset: int) -> None:
        self.free.append([offset, self.used.pop(offset)])
        self.free.sort()
        merged: list[list[int]] = []
        for block in self.free:
            if merged and merged[-1][0] + merged[-1][1] == block[0]:
                merged[-1][1] += block[1]
            else:
                merged.append(block)
        self.free = merged

    def free_blocks(self) -> Iterator[tuple[int, int]]:
        return iter([(offset, size) for offset, size in self.free])

    def allocated_blocks(self) -> Iterator[tuple[int, int]]:
        return iter(sorted(self.used.items()))


#: placements on ToyFirstFit (block = request rounded up to 16), live bytes after each op
HAND_MADE = [
    "a 0 300",  # [0, 304)                                   live 300
    "a 5 48",   # [304, 352)                                 live 348
    "a 1 16",   # [352, 368)                                 live 364
    "f 5",      # hole [304, 352): 48 bytes                  live 316
    "a 2 300",  # 48 too small -> [368, 672); high water 668 live 616  <- the peak
    "f 0",      # free [0, 352) (coalesced)                  live 316
    "f 2",      # free [368, 1024)                           live 16
    "a 3 390",  # [0, 352) too small -> [368, 768); hw 758   live 406
    "f 1",      #                                            live 390
    "f 3",      #                                            live 0
]


@pytest.fixture
def toy_result():  # type: ignore[no-untyped-def]
    trace = parse_lines(HAND_MADE, "hand-made")
    return replay(trace, ToyFirstFit(), memoryview(bytearray(SEGMENT)), SEGMENT,
                  samples=len(HAND_MADE))


def test_design_figures_on_the_hand_made_trace(toy_result) -> None:  # type: ignore[no-untyped-def]
    r = toy_result
    assert (r.ops, r.peak_live, r.high_water, r.failures) == (10, 616, 758, 0)
    assert r.footprint_ratio == pytest.approx(758 / 616)
    # at the peak the free blocks are the 48-byte hole and the 352-byte tail
    assert r.frag_at_peak == pytest.approx(1 - 352 / 400)
    assert r.first_failure_utilisation is None


def _reference_figures(lines: list[str]) -> tuple[int, int, int, int | None, int, int]:
    """The replay rules (docs/architecture.md) in one plain pass, bookkeeping beside every call:
    (peak, high water, failures, live at the first failure, live and blocks when the high water
    last rose)."""
    alg, trace = ToyFirstFit(), parse_lines(lines)
    offsets: dict[int, int] = {}
    sizes: dict[int, int] = {}
    live = peak = high_water = failures = blocks = 0
    first_failure = None
    at_high_water = (0, 0)
    for code, ident, size, _ in trace.ops:
        if code != ALLOC and ident not in offsets:
            continue
        if code == FREE:
            alg.deallocate(offsets.pop(ident))
            live -= sizes.pop(ident)
            blocks -= 1
            continue
        old = sizes.get(ident, 0) if code != ALLOC else 0
        if code != ALLOC and size <= old:
            live += size - old
            sizes[ident] = size
            continue
        offset = alg.allocate(size)
        if offset is None:
            failures += 1
            first_failure = live if first_failure is None else first_failure
            continue
        if code != ALLOC:
            alg.deallocate(offsets[ident])
        else:
            blocks += 1
        offsets[ident], sizes[ident] = offset, size
        live += size - old
        peak = max(peak, live)
        if offset + size > high_water:
            high_water, at_high_water = offset + size, (live, blocks)
    return peak, high_water, failures, first_failure, *at_high_water


_OPERATION = st.one_of(
    st.tuples(st.just("a"), st.integers(0, 7), st.integers(0, 400)),
    st.tuples(st.just("f"), st.integers(0, 7)),
    st.tuples(st.just("r"), st.integers(0, 7), st.integers(0, 600)),
)


def _well_formed(operations: list[tuple[object, ...]]) -> list[str]:
    """The lines of ``operations`` a trace may hold (the reader refuses the others): an
    allocation of a free ID, a free or reallocation of a live one."""
    live: set[object] = set()
    lines = []
    for operation in operations:
        kind, ident = operation[0], operation[1]
        if (kind == "a") == (ident in live):
            continue
        if kind == "a":
            live.add(ident)
        elif kind == "f":
            live.discard(ident)
        lines.append(" ".join(map(str, operation)))
    return lines


@given(st.lists(_OPERATION, min_size=1, max_size=60), st.integers(0, 6))
def test_timed_loop_and_untimed_accounting_agree_with_the_plain_rules(
        operations: list[tuple[object, ...]], samples: int) -> None:
    """The replay accounts live bytes after each timed chunk from the failures it noted; a
    single plain pass must give the same figures (IDs reused after a free, operations on the
    ID of a failed allocation, failures, moves)."""
    lines = _well_formed(operations)
    r = replay(parse_lines(lines), ToyFirstFit(), memoryview(bytearray(SEGMENT)), SEGMENT,
               samples=samples)
    assert r.observations is not None
    peak, high_water, failures, first_failure, live_at_hw, blocks_at_hw = _reference_figures(lines)
    assert (r.peak_live, r.high_water, r.failures) == (peak, high_water, failures)
    assert r.first_failure_utilisation == (None if first_failure is None else first_failure / SEGMENT)
    assert (r.observations.live_at_high_water, r.observations.blocks_at_high_water) == (
        live_at_hw, blocks_at_hw)


def test_first_failure_utilisation_is_live_bytes_over_the_segment() -> None:
    trace = parse_lines([
        "a 0 500",  # [0, 512)                     live 500
        "a 1 400",  # [512, 912)                   live 900
        "a 2 200",  # 112 bytes free: fails        live 900  <- first failure
        "f 0",      #                              live 400
        "a 3 200",  # [0, 208)                     live 600
        "a 4 900",  # fails again: not counted in the utilisation
        "f 3",      # 2 is unbound: its free is skipped
        "f 2",
    ], "failing")
    r = replay(trace, ToyFirstFit(), memoryview(bytearray(SEGMENT)), SEGMENT)
    assert r.failures == 2
    assert r.first_failure_utilisation == pytest.approx(900 / SEGMENT)
    assert (r.peak_live, r.high_water) == (900, 912)


def test_observations_on_the_hand_made_trace(toy_result) -> None:  # type: ignore[no-untyped-def]
    seen = toy_result.observations
    assert seen.free_sizes_at_peak == (48, 352)
    # the high water was last raised by "a 3 390" with blocks 1 and 3 live, 406 bytes
    assert (seen.live_at_high_water, seen.blocks_at_high_water) == (406, 2)
    # the census right after: 16 + 400 usable bytes for 406 requested in two blocks
    assert seen.overhead_per_block == pytest.approx(5)
    assert [s.live for s in seen.timeline] == [300, 348, 364, 316, 616, 316, 16, 406, 390, 0]
    assert [s.high_water for s in seen.timeline] == [300, 352, 368, 368, 668, 668, 668, 758,
                                                     758, 758]
    assert seen.timeline[4].spread == pytest.approx(1 - math.sqrt(48**2 + 352**2) / 400)
    assert seen.timeline[-1].spread == 0.0  # everything free: one block
    assert seen.timeline[4].largest_free == 352 and seen.timeline[-1].largest_free == SEGMENT
    assert seen.stopped_at is None


def test_cell_figures_on_the_hand_made_trace(toy_result) -> None:  # type: ignore[no-untyped-def]
    f = cell_figures(toy_result)
    assert f["fragmentation_4"] == pytest.approx(758 / 616 - 1)
    assert f["fragmentation_3"] == pytest.approx(758 / 406 - 1)
    policy = 758 - 2 * 5
    assert f["fragmentation_4_policy"] == pytest.approx(policy / 616 - 1)
    assert f["fragmentation_3_policy"] == pytest.approx(policy / 406 - 1)
    assert f["peak_utilisation"] == pytest.approx(616 / 758)
    assert f["spread_at_peak"] == pytest.approx(1 - math.sqrt(48**2 + 352**2) / 400)
    assert f["free_blocks_at_peak"] == 2
    assert f["largest_free_at_peak"] == 352
    # time-averaged (#1): the samples' high water summed over their live bytes summed
    assert f["fragmentation_1"] == pytest.approx(
        sum([300, 352, 368, 368, 668, 668, 668, 758, 758, 758])
        / sum([300, 348, 364, 316, 616, 316, 16, 406, 390, 0]) - 1)


@pytest.mark.parametrize(
    ("sizes", "spread", "largest"),
    [([], 0.0, 0.0), ([100], 0.0, 0.0), ([10, 10, 10, 10], 0.5, 0.75),
     ([3, 4], 1 - 5 / 7, 1 - 4 / 7)],
)
def test_free_space_figures(sizes: list[int], spread: float, largest: float) -> None:
    assert metrics.sawicki_spread(sizes) == pytest.approx(spread)
    assert metrics.largest_free_fraction(sizes) == pytest.approx(largest)


def test_johnstone_wilson_and_utilisation() -> None:
    assert metrics.fragmentation_4(1300, 1000) == pytest.approx(0.3)
    assert metrics.fragmentation_3(1300, 650) == pytest.approx(1.0)
    assert metrics.fragmentation_4(0, 0) == 0.0 and metrics.fragmentation_3(5, 0) == 0.0
    assert metrics.policy_heap(1300, 10, 16) == 1140
    assert metrics.peak_utilisation(1000, 1250) == pytest.approx(0.8)
    assert metrics.peak_utilisation(0, 0) == 0.0


def test_size_histogram_buckets_by_power_of_two() -> None:
    assert metrics.size_histogram([1, 2, 3, 4, 7, 8, 1000]) == {
        "2^0": 1, "2^1": 2, "2^2": 2, "2^3": 1, "2^9": 1}
    assert metrics.size_histogram([]) == {}


def test_budget_stops_a_replay_where_it_says() -> None:
    trace = workload_trace("uniform", 1, 3000)
    result = replay(trace, _bound("sequential_fit"), _BUFFERS[-1], 1 << 22, budget_seconds=0.0)
    assert result.observations is not None
    stopped = result.observations.stopped_at
    assert stopped is not None and 0 < stopped < len(trace.ops)
    assert result.ops == stopped


_BUFFERS: list[memoryview] = []


def _bound(name: str):  # type: ignore[no-untyped-def]
    buf = memoryview(bytearray(1 << 22))
    _BUFFERS.append(buf)
    return plugins().algorithm(name).format(buf, 128, (1 << 22) - 128)


@pytest.mark.parametrize("algorithm", sorted(plugins().algorithms))
def test_figures_agree_with_each_other_on_every_algorithm(algorithm: str) -> None:
    trace = workload_trace("adversarial", 3, 1200)
    result = replay_trace(trace, algorithm, samples=8)
    f = cell_figures(result)
    assert result.peak_live == trace.peak_live and result.failures == 0
    assert f["fragmentation_4"] == pytest.approx(result.footprint_ratio - 1)
    assert f["peak_utilisation"] == pytest.approx(1 / result.footprint_ratio)
    assert f["fragmentation_4_policy"] <= f["fragmentation_4"]
    assert f["fragmentation_3"] >= f["fragmentation_4"]  # live at max heap <= max live
    assert 0.0 <= f["spread_at_peak"] <= 1.0 and 0.0 <= result.frag_at_peak <= 1.0
    assert len(result.observations.timeline) == 8


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1000, 0, -1))  # 1..1000, unordered
    assert metrics.percentiles(values) == {"p50": 500, "p90": 900, "p99": 990, "p999": 999,
                                           "max": 1000}
    assert metrics.percentiles([7]) == {"p50": 7, "p90": 7, "p99": 7, "p999": 7, "max": 7}
    with pytest.raises(ValueError):
        metrics.percentiles([])
    points = metrics.cdf_points([5] * 50 + [9] * 50)
    assert points == [[5, 0.5], [9, 1.0]]
    assert metrics.mean_and_max([1, 2, 6]) == {"mean": 3.0, "max": 6}
    assert metrics.fragmentation_1([10, 20], [5, 5]) == pytest.approx(2.0)
    assert metrics.fragmentation_1([], []) is None


def test_counting_words_counts_reads_writes_and_lines() -> None:
    words = CountingWords(memoryview(bytearray(8 * 64)).cast("Q"))
    start = words.reading()
    words[3] = 7  # line 0
    assert words[3] + words[7] == 7  # line 0 twice more
    words[8] = words[20]  # lines 1 and 2
    words[16:18] = memoryview(bytes(16)).cast("Q")  # line 2, two words
    assert (words.reads, words.writes, len(words)) == (3, 4, 64)
    delta = words.reading() - start
    assert delta == 3 | 4 << 48 | 3 << 96  # reads, writes, distinct lines (0, 1, 2)


@pytest.mark.parametrize("algorithm", sorted(plugins().algorithms))
def test_word_counts_are_deterministic_and_the_probed_replay_places_alike(algorithm: str) -> None:
    trace = workload_trace("realloc_growth", 2, 600)
    first, second = (measure_cost(trace, _bound(algorithm), _BUFFERS[-1]) for _ in range(2))
    assert first == second
    assert first.ops == len(first.words) > 0 and min(first.words) >= 1
    assert [r + w for r, w in zip(first.reads, first.writes)] == first.words
    assert all(1 <= lines <= words for lines, words in zip(first.lines, first.words))
    # the probes follow the replay rules: the same blocks as the timed replay (the cost probe
    # of a compiled algorithm runs its interpreted build on the same bytes)
    timed, costed, timed_ops = _bound(algorithm), _bound(algorithm), _bound(algorithm)
    replay(trace, timed, _BUFFERS[-3], 1 << 22)
    measure_cost(trace, costed, _BUFFERS[-2])
    measure_latency(trace, timed_ops, _BUFFERS[-1])
    layouts = [(list(alg.allocated_blocks()), list(alg.free_blocks()))
               for alg in (timed, costed, timed_ops)]
    assert layouts[0][1] and layouts[1] == layouts[0] and layouts[2] == layouts[0]


def _cheap_then_dear() -> Trace:
    """A trace whose first half costs first fit a few words an operation and whose second half
    walks 150 holes an operation: allocate / free pairs of one block, then 300 blocks with every
    other freed, then pairs of a block no hole holds."""
    lines = [f"a p{i} 32\nf p{i}" for i in range(1200)]
    lines += [f"a b{i} 48" for i in range(300)] + [f"f b{i}" for i in range(0, 300, 2)]
    lines += [f"a q{i} 4096\nf q{i}" for i in range(750)]
    return parse_lines("\n".join(lines).splitlines(), "cheap-then-dear")


def test_a_budgeted_cost_count_samples_the_whole_trace_not_its_start() -> None:
    trace = _cheap_then_dear()
    full = measure_cost(trace, _bound("sequential_fit"), _BUFFERS[-1])
    assert full.ops == len(trace.ops) and set(full.weights) == {1.0}
    whole = metrics.mean_and_max(full.words, full.weights)
    sampled = measure_cost(trace, _bound("sequential_fit"), _BUFFERS[-1],
                           access_budget=sum(full.words) // 10)
    assert sampled.ops < len(trace.ops) // 2
    assert sum(sampled.weights) == pytest.approx(len(trace.ops))
    estimate = metrics.mean_and_max(sampled.words, sampled.weights)
    # the expensive half is where most of the words go: a prefix would miss it
    assert estimate["mean"] == pytest.approx(whole["mean"], rel=0.1) and whole["mean"] > 50
    assert estimate["max"] == whole["max"]
    # the uncounted operations replayed by the compiled build leave the same blocks
    counted, timed = _bound("sequential_fit"), _bound("sequential_fit")
    assert measure_cost(trace, counted, _BUFFERS[-2], access_budget=5000) == measure_cost(
        trace, _bound("sequential_fit"), _BUFFERS[-1], access_budget=5000)
    replay(trace, timed, _BUFFERS[-3], 1 << 22)
    assert list(counted.free_blocks()) == list(timed.free_blocks())


_COST_SCRIPT = """
import dataclasses, json
from segalloc import plugins
from segalloc.bench.probes import measure_cost
from segalloc.bench.workloads import workload_trace
buf = memoryview(bytearray(1 << 22))
alg = plugins().algorithm("segregated_fit").format(buf, 128, (1 << 22) - 128)
print(json.dumps(dataclasses.asdict(measure_cost(workload_trace("realloc_growth", 2, 600), alg, buf,
                                                 access_budget=2000))))
"""


def test_word_counts_are_the_same_in_both_builds() -> None:
    # a compiled algorithm is counted on its interpreted build: what SEGALLOC_PURE_PYTHON=1 runs
    env = {**os.environ, "SEGALLOC_PURE_PYTHON": "1"}
    done = subprocess.run([sys.executable, "-c", _COST_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    # a budget that makes it count samples: the compiled build replays the rest of each stretch
    here = measure_cost(workload_trace("realloc_growth", 2, 600), _bound("segregated_fit"),
                        _BUFFERS[-1], access_budget=2000)
    assert json.loads(done.stdout) == dataclasses.asdict(here) and 0 < here.ops < 600


def test_cost_counts_failures_with_enough_free_memory() -> None:
    # 16 blocks of 64 fill the toy segment; freeing every other leaves 512 bytes free in
    # holes of 64: a request of 128 fails although the total would hold it, one of 2048 not
    lines = [f"a {i} 64" for i in range(16)] + [f"f {i}" for i in range(0, 16, 2)]
    trace = parse_lines([*lines, "a 100 128", "a 101 2048"])
    toy = ToyFirstFit()
    toy.words = [0] * 8  # type: ignore[attr-defined]
    assert measure_cost(trace, toy, memoryview(bytearray(SEGMENT))).failures_with_enough_free == 1


def test_latency_has_a_sample_an_operation_of_each_kind() -> None:
    trace = workload_trace("realloc_growth", 2, 600)
    spans, clock = measure_latency(trace, _bound("best_fit"), _BUFFERS[-1])
    counts = {kind: sum(op[0] == code for op in trace.ops)
              for code, kind in ((ALLOC, "allocate"), (FREE, "free"), (REALLOC, "realloc"))}
    assert {kind: len(values) for kind, values in spans.items()} == counts
    assert clock >= 0 and all(v >= 0 for values in spans.values() for v in values)
    no_realloc, _ = measure_latency(workload_trace("uniform", 2, 400), _bound("best_fit"),
                                    _BUFFERS[-1])
    assert set(no_realloc) == {"allocate", "free"}
