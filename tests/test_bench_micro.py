"""Micro-benchmarks of allocate/free per registered algorithm (pytest-benchmark).

Kept out of the default run by ``--benchmark-skip`` in the pytest configuration; run them with
``pytest tests/test_bench_micro.py --benchmark-only``. Each benchmark works on an algorithm
bound to a plain buffer, with a few hundred blocks already live and holes between them, so the
free structures are not trivially empty.
"""

from __future__ import annotations

import random

import pytest

from segalloc import MemoryAlgorithm, plugins

ALGORITHMS = sorted(plugins().algorithms)
REGION = 1 << 22
START = 128


def _fragmented(name: str) -> MemoryAlgorithm:
    """An algorithm with 400 live blocks of mixed sizes and every third one freed."""
    buffer = memoryview(bytearray(START + REGION))
    algorithm = plugins().algorithm(name).format(buffer, START, REGION)
    rng = random.Random(0)
    offsets = [algorithm.allocate(rng.randint(16, 512)) for _ in range(400)]
    for offset in offsets[::3]:
        assert offset is not None
        algorithm.deallocate(offset)
    return algorithm


@pytest.mark.benchmark(group="allocate+free 64 B")
@pytest.mark.parametrize("name", ALGORITHMS)
def test_allocate_free_small(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    algorithm = _fragmented(name)

    def allocate_free() -> None:
        algorithm.deallocate(algorithm.allocate(64))  # type: ignore[arg-type]

    benchmark(allocate_free)
    assert algorithm.check_sanity()


@pytest.mark.benchmark(group="allocate+free mixed sizes")
@pytest.mark.parametrize("name", ALGORITHMS)
def test_allocate_free_mixed(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    algorithm = _fragmented(name)
    sizes = [24, 200, 1000, 48, 4000, 96]

    def allocate_free() -> None:
        offsets = [algorithm.allocate(size) for size in sizes]
        for offset in reversed(offsets):
            algorithm.deallocate(offset)  # type: ignore[arg-type]

    benchmark(allocate_free)
    assert algorithm.check_sanity()


@pytest.mark.benchmark(group="segment allocate+free 64 B: cost of the lock and journal")
@pytest.mark.parametrize("backend", ["heap", "mapped_file"])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_segment_allocate_free(benchmark, name: str, backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through the segment manager: heap (thread lock, no journal) beside a mapped file (flock
    and the undo journal), so the price of crash consistency per operation shows."""
    from segalloc import Mode
    from segalloc.managed import managed_class

    cls = managed_class(plugins().backend(backend))
    args = (REGION,) if backend == "heap" else (Mode.CREATE_ONLY, tmp_path / "seg", REGION)
    segment = cls(*args, algorithm=name)
    rng = random.Random(0)
    handles = [segment.allocate(rng.randint(16, 512)) for _ in range(400)]
    segment.deallocate_many(handles[::3])

    def allocate_free() -> None:
        segment.deallocate(segment.allocate(64))  # type: ignore[arg-type]

    benchmark(allocate_free)
    assert segment.check_sanity()
    segment.close()


@pytest.mark.benchmark(group="worst case stays flat: allocate+free with N live blocks")
@pytest.mark.parametrize("live", [1_000, 100_000])
@pytest.mark.parametrize("name", ALGORITHMS)
def test_cost_with_many_live_blocks(benchmark, name: str, live: int) -> None:  # type: ignore[no-untyped-def]
    """Random frees and allocations among ``live`` blocks of random sizes: a good-fit
    algorithm costs the same per operation at 1,000 and at 100,000 live blocks."""
    region = 64 << 20
    buffer = memoryview(bytearray(START + region))
    algorithm = plugins().algorithm(name).format(buffer, START, region)
    rng = random.Random(live)
    blocks = [algorithm.allocate(rng.randint(16, 256)) for _ in range(live)]
    sizes = [rng.randint(16, 256) for _ in range(1024)]
    picks = [rng.randrange(live) for _ in range(1024)]
    state = {"round": 0}

    def free_one_allocate_one() -> None:
        k = state["round"] = (state["round"] + 1) & 1023
        slot = picks[k]
        algorithm.deallocate(blocks[slot])  # type: ignore[arg-type]
        blocks[slot] = algorithm.allocate(sizes[k])

    benchmark(free_one_allocate_one)
    assert algorithm.check_sanity()
