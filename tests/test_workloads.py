"""The synthetic loads: deterministic from a seed, well-formed, and shaped as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from segalloc.bench.replay import replay_trace
from segalloc.bench.traces import ALLOC, FREE, REALLOC, read_trace, write_trace
from segalloc.bench.workloads import (
    WORKLOADS,
    coefficient_of_variation,
    generate,
    trace_from_ops,
    workload_trace,
)

SCALE = 3000


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_same_seed_same_operations_other_seed_others(name: str) -> None:
    assert generate(name, 7, SCALE) == generate(name, 7, SCALE)
    assert generate(name, 7, SCALE) != generate(name, 8, SCALE)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_operations_are_well_formed(name: str) -> None:
    """Ids are dense, allocated once, freed or reallocated only while live; sizes positive;
    alignments powers of two; about ``scale`` operations."""
    ops = generate(name, 1, SCALE)
    live: set[int] = set()
    seen: set[int] = set()
    for code, ident, size, align in ops:
        if code == ALLOC:
            assert ident not in seen and size > 0
            assert align == 0 or align & (align - 1) == 0
            seen.add(ident)
            live.add(ident)
        elif code == FREE:
            assert ident in live
            live.remove(ident)
        else:
            assert code == REALLOC and ident in live and size > 0
    assert seen == set(range(len(seen)))
    assert SCALE // 2 <= len(ops) <= 2 * SCALE


def test_trace_from_ops_agrees_with_the_trace_reader(tmp_path: Path) -> None:
    for name in ("realloc_growth", "peaks"):
        made = workload_trace(name, 2, SCALE)
        write_trace(made.ops, tmp_path / f"{name}.trace.gz")
        read = read_trace(tmp_path / f"{name}.trace.gz")
        assert (read.ops, read.ids, read.peak_live, read.peak_index) == (
            made.ops, made.ids, made.peak_live, made.peak_index)


def test_trace_from_ops_on_a_hand_made_list() -> None:
    ops = [(ALLOC, 0, 100, 0), (ALLOC, 1, 50, 0), (REALLOC, 0, 300, 0), (FREE, 1, 0, 0),
           (ALLOC, 2, 10, 0)]
    trace = trace_from_ops("hand", ops)
    assert (trace.ids, trace.peak_live, trace.peak_index) == (3, 350, 2)


def test_the_size_sweep_rises_in_coefficient_of_variation() -> None:
    cvs = []
    for name in ("cv_uniform", "cv_exponential", "cv_hyperexponential"):
        sizes = [size for code, _, size, _ in generate(name, 0, 20_000) if code == ALLOC]
        assert sum(sizes) / len(sizes) == pytest.approx(256, rel=0.1)
        cvs.append(coefficient_of_variation(sizes))
    assert cvs[0] == pytest.approx(0.58, abs=0.05)
    assert cvs[1] == pytest.approx(1.0, abs=0.1)
    assert cvs[2] == pytest.approx(3.0, abs=0.6)


def test_aligned_load_asks_for_alignments_up_to_a_page() -> None:
    alignments = {align for code, _, _, align in generate("aligned", 0, SCALE) if code == ALLOC}
    assert {0, 16, 4096} <= alignments


def test_adversarial_load_leaves_holes_too_small_for_its_requests() -> None:
    """Every small block is freed, then only larger requests follow."""
    ops = generate("adversarial", 0, 1200)
    sizes = {code: set() for code in (ALLOC,)}
    for code, _, size, _ in ops:
        if code == ALLOC:
            sizes[ALLOC].add(size)
    assert min(sizes[ALLOC]) == 64 and max(sizes[ALLOC]) > 256


def test_fill_to_failure_fails_in_its_segment() -> None:
    load = WORKLOADS["fill_to_failure"]
    assert load.segment_size is not None
    trace = workload_trace("fill_to_failure", 0, SCALE)
    assert trace.peak_live > load.segment_size
    result = replay_trace(trace, "sequential_fit", load.segment_size)
    assert result.failures > 0
    assert result.first_failure_utilisation is not None
    assert 0.3 < result.first_failure_utilisation < 1.0


def test_unknown_workload_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown workload 'nope'; known: uniform, "):
        generate("nope", 0, 10)
    with pytest.raises(ValueError, match="scale"):
        generate("uniform", 0, 0)


def test_small_objects_are_almost_all_under_512_bytes() -> None:
    sizes = [size for code, _, size, _ in generate("small_objects", 0, 20_000) if code == ALLOC]
    assert 0.99 < sum(size < 512 for size in sizes) / len(sizes) < 1.0  # 99.7 % drawn


def test_lognormal_load_keeps_fifty_blocks_of_cpython_test_heap_sizes() -> None:
    trace = workload_trace("lognormal", 0, 4000)
    sizes = sorted(size for code, _, size, _ in trace.ops if code == ALLOC)
    assert sizes[len(sizes) // 2] == pytest.approx(1000, rel=0.15)  # median of e^N(0,1) is 1
    live = max(sum(1 if code == ALLOC else -1 for code, _, _, _ in trace.ops[:k])
               for k in range(0, len(trace.ops), 97))
    assert live == 50


@pytest.mark.parametrize("algorithm", ["best_fit", "segregated_fit", "sequential_fit"])
def test_large_blocks_fail_from_fragmentation_not_exhaustion(algorithm: str,
                                                            tmp_path: Path) -> None:
    """Ray's plasma store pattern: large requests fail although the free total would hold them."""
    from segalloc.bench.runner import CellSpec, Load, run_cell

    load = Load("large_blocks", "workload", scale=600,
                segment_size=WORKLOADS["large_blocks"].segment_size)
    cell = run_cell(CellSpec(algorithm, "heap", load, 0, str(tmp_path)))
    figures = cell["figures"]
    assert figures["failures"] > 0
    assert figures["failures_with_enough_free"] >= figures["failures"] // 2
