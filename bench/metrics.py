"""Fragmentation and utilisation figures, computed from what a replay observed.

Pure functions of numbers and free-block sizes (no replay, no segment), so each is tested on
hand-made values. The figures beyond the replay's ``footprint_ratio`` and ``frag_at_peak``
(docs/architecture.md, "Metric names"):

- Johnstone & Wilson (1998), "The memory fragmentation problem: solved?": the heap is the
  high-water mark (memory the allocator has touched, counted from the segment start, as a
  ``sbrk`` heap that never shrinks).
  #3 = max heap / live bytes at the moment of max heap - 1;
  #4 = max heap / max live bytes - 1 (the headline: ``footprint_ratio - 1``).
  Each comes as ``total`` and ``policy``: the policy figure takes the per-block overhead
  (header bytes and size rounding, measured on the blocks live just after the heap last grew,
  at the replay's next census point) out of the heap, so it estimates what the placement
  policy alone costs, as Johnstone & Wilson separate them. A replay whose segment ran out
  has a capped heap, where the estimate means nothing: the harness leaves it out (null).
- CS:APP's peak utilisation U = max payload / heap size (Bryant & O'Hallaron, 9.9.7).
  #1 (time-averaged) = mean heap over the run / mean live bytes over the run - 1, both
  averaged over the replay's evenly spaced samples of the allocation clock (the ratio of the
  averages, so moments of almost nothing live do not dominate).
- Sawicki's free-space spread F = 1 - sqrt(sum of squared free sizes) / sum of free sizes:
  0 for one free block, near 1 for many small ones (sampled over time by the replay). It is
  also pw_allocator's fragmentation figure (Pigweed's allocator benchmark records it after
  every request, with the largest free block).
- Distributions (latency, word traffic per operation): nearest-rank percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

numpy: Any
try:  # optional: sorts and ranks large samples faster
    import numpy
except ImportError:  # pragma: no cover - depends on the environment
    numpy = None

__all__ = [
    "CDF_PROBABILITIES",
    "PERCENTILES",
    "cdf_points",
    "fragmentation_1",
    "fragmentation_3",
    "fragmentation_4",
    "largest_free_fraction",
    "mean_and_max",
    "percentiles",
    "peak_utilisation",
    "policy_heap",
    "sawicki_spread",
    "size_histogram",
]


def largest_free_fraction(free_sizes: Iterable[int]) -> float:
    """``frag_at_peak``'s formula: 1 - largest free block / total free (0 when nothing is free)."""
    largest = total = 0
    for size in free_sizes:
        total += size
        largest = max(largest, size)
    return 1.0 - largest / total if total else 0.0


def sawicki_spread(free_sizes: Iterable[int]) -> float:
    """1 - sqrt(sum of squares) / sum of free block sizes (0 when nothing is free)."""
    total = squares = 0
    for size in free_sizes:
        total += size
        squares += size * size
    return 1.0 - math.sqrt(squares) / total if total else 0.0


def fragmentation_3(heap: float, live_at_max_heap: int) -> float:
    """Johnstone & Wilson #3: max heap over the live bytes at that moment, minus one."""
    return heap / live_at_max_heap - 1.0 if live_at_max_heap else 0.0


def fragmentation_4(heap: float, peak_live: int) -> float:
    """Johnstone & Wilson #4: max heap over max live bytes, minus one (the headline)."""
    return heap / peak_live - 1.0 if peak_live else 0.0


def policy_heap(high_water: int, blocks_at_max_heap: int, overhead_per_block: float) -> float:
    """The heap with the per-block overhead of the blocks live at max heap taken out."""
    return high_water - blocks_at_max_heap * overhead_per_block


def peak_utilisation(peak_live: int, high_water: int) -> float:
    """CS:APP's U: max payload over the heap's size (1 is perfect; 1 / footprint_ratio)."""
    return peak_live / high_water if high_water else 0.0


def size_histogram(sizes: Sequence[int]) -> dict[str, int]:
    """Counts by power-of-two bucket: key ``"2^k"`` holds sizes in ``[2^k, 2^(k+1))``."""
    counts: dict[int, int] = {}
    for size in sizes:
        bucket = max(size, 1).bit_length() - 1
        counts[bucket] = counts.get(bucket, 0) + 1
    return {f"2^{bucket}": counts[bucket] for bucket in sorted(counts)}


def fragmentation_1(heap_samples: Sequence[int], live_samples: Sequence[int]) -> float | None:
    """Johnstone & Wilson #1: the heap averaged over time over the live bytes averaged over
    time, minus one (None without samples or with nothing ever live)."""
    live = sum(live_samples)
    return sum(heap_samples) / live - 1.0 if live else None


#: the percentiles reported of a distribution: (key, percent)
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
#: the probabilities at which a distribution's CDF is kept for plotting
CDF_PROBABILITIES = (*(k / 100 for k in range(1, 100)), 0.995, 0.999, 0.9995, 0.9999, 1.0)


def _sorted(values: Sequence[int]) -> Sequence[Any]:
    if numpy is not None:
        ordered: Sequence[Any] = numpy.sort(numpy.asarray(values))
        return ordered
    return sorted(values)


def _rank(ordered: Sequence[Any], probability: float) -> int:
    """The nearest-rank value: the smallest with at least ``probability`` of the sample at or
    below it."""
    index = max(0, math.ceil(round(probability * len(ordered), 9)) - 1)  # no float overshoot
    return int(ordered[min(index, len(ordered) - 1)])


def percentiles(values: Sequence[int]) -> dict[str, int]:
    """p50, p90, p99, p99.9 (nearest rank) and max of a non-empty sample."""
    if not len(values):
        raise ValueError("percentiles need at least one value")
    ordered = _sorted(values)
    figures = {key: _rank(ordered, percent / 100) for key, percent in PERCENTILES}
    figures["max"] = int(ordered[-1])
    return figures


def cdf_points(values: Sequence[int]) -> list[list[float]]:
    """[value, probability] at ``CDF_PROBABILITIES`` (consecutive equal values merged): a
    distribution's shape in ~100 points, whatever its size."""
    ordered = _sorted(values)
    points: list[list[float]] = []
    for probability in CDF_PROBABILITIES:
        value = _rank(ordered, probability)
        if points and points[-1][0] == value:
            points[-1][1] = probability
        else:
            points.append([value, probability])
    return points


def mean_and_max(values: Sequence[int],
                 weights: Sequence[float] | None = None) -> dict[str, float]:
    """{"mean": .., "max": ..} of a sample (zeros when it is empty); with ``weights``, the mean
    weighs each value by its weight (how many it stands for)."""
    if not values:
        return {"mean": 0.0, "max": 0}
    if weights is None:
        return {"mean": sum(values) / len(values), "max": max(values)}
    mean = math.fsum(v * w for v, w in zip(values, weights, strict=True)) / math.fsum(weights)
    return {"mean": mean, "max": max(values)}
