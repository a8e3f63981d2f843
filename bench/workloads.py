"""Synthetic stress loads: deterministic generators of trace operations from a seed.

Each load is a generator of ``(code, id, size, align)`` operations in the format of
``segalloc.bench.traces`` (ids dense from 0, never reused), so a load replays, writes to a file and
compares exactly like a recorded trace. The same ``(name, seed, scale)`` always gives the same
operations: every random draw comes from one ``random.Random(seed)`` made per load.

``scale`` is the load's size knob: roughly the number of operations it emits. The shapes:

- steady state (``uniform``, ``heavy_tailed``, ``small_churn``): fill to a working set, then
  free a random live object and allocate a new one, over and over;
- Wilson et al.'s program shapes (``ramp``, ``peaks``, ``plateau``): live bytes that climb
  slowly, rise and fall in bursts, or jump up and stay;
- ``larson``: Larson & Krishnan's server benchmark, objects handed from one owner to the next
  between rounds and freed there, so lifetimes straddle rounds;
- ``realloc_growth``: buffers grown a step at a time with ``r`` among other traffic;
- ``aligned``: allocations with alignments from 16 to 4096;
- ``batches``: ``allocate_many``-style bursts of equal-sized allocations freed a batch at a time
  (a burst of ``a`` operations: the replay measures the algorithm, not the batching API);
- ``adversarial``: interleave two sizes, free every other block, then ask for the larger size,
  which fits none of the holes;
- ``fill_to_failure``: allocations outgrowing a small segment (``Workload.segment_size``), which
  gives ``first_failure_utilisation``;
- ``cv_uniform``, ``cv_exponential``, ``cv_hyperexponential``: steady state with one mean size
  and a rising coefficient of variation (about 0.58, 1 and 3), the sweep in which Shore (1975)
  saw first fit and best fit change places.

Loads from the field:

- ``large_blocks``: objects of 35-45 % of a fixed segment, at most two live, among small ones
  that outlive them: the pattern that made Ray's plasma store fail from fragmentation alone
  (ray-project/ray#16164; ``failures_with_enough_free`` counts exactly those failures);
- ``small_objects``: 99.7 % of requests under 512 bytes, the rest up to 64 KiB, as measured
  in a blockchain node's state database (AntelopeIO/spring#1049);
- ``lognormal``: CPython's ``test_heap`` (multiprocessing.heap): sizes
  ``int(lognormvariate(0, 1) * 1000)``, 50 blocks live, a random one freed per new one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from segalloc.bench.traces import ALLOC, FREE, REALLOC, Op, Trace

__all__ = [
    "WORKLOADS",
    "Workload",
    "coefficient_of_variation",
    "generate",
    "trace_from_ops",
    "workload_trace",
]

SizeDraw = Callable[[random.Random], int]

#: mean request size of the coefficient-of-variation sweep (bytes)
CV_MEAN = 256
#: the hyperexponential's two branches: a fraction P_SMALL of small requests, the rest large,
#: chosen so the mean is CV_MEAN and the coefficient of variation about 3
HYPER_P_SMALL = 0.9
HYPER_SMALL_MEAN = 85.0
HYPER_LARGE_MEAN = (CV_MEAN - HYPER_P_SMALL * HYPER_SMALL_MEAN) / (1 - HYPER_P_SMALL)
#: largest request any synthetic load makes (keeps heavy tails inside a sane segment)
MAX_REQUEST = 1 << 20


class _Ids:
    """Dense fresh ids, one per allocation."""

    def __init__(self) -> None:
        self.next = 0

    def new(self) -> int:
        self.next += 1
        return self.next - 1


# -- size distributions ------------------------------------------------------------------
def _uniform(low: int, high: int) -> SizeDraw:
    return lambda rng: rng.randint(low, high)


def _pareto(minimum: int, alpha: float) -> SizeDraw:
    """Heavy tail: most requests near ``minimum``, a few very large."""
    return lambda rng: min(MAX_REQUEST, int(minimum * rng.paretovariate(alpha)))


def _exponential(mean: float) -> SizeDraw:
    return lambda rng: max(1, min(MAX_REQUEST, int(rng.expovariate(1 / mean))))


def _hyperexponential(rng: random.Random) -> int:
    mean = HYPER_SMALL_MEAN if rng.random() < HYPER_P_SMALL else HYPER_LARGE_MEAN
    return max(1, min(MAX_REQUEST, int(rng.expovariate(1 / mean))))


# -- load shapes ---------------------------------------------------------------------------
def _steady_state(draw: SizeDraw, working_set: int) -> Callable[..., Iterator[Op]]:
    """Fill to ``working_set`` objects, then replace a random one per step; free all at the end."""

    def generate(rng: random.Random, scale: int, ids: _Ids | None = None) -> Iterator[Op]:
        ids = ids or _Ids()
        live: list[int] = []
        for _ in range(working_set):
            ident = ids.new()
            live.append(ident)
            yield (ALLOC, ident, draw(rng), 0)
        for _ in range(max(0, (scale - 2 * working_set) // 2)):
            slot = rng.randrange(len(live))
            yield (FREE, live[slot], 0, 0)
            live[slot] = ids.new()
            yield (ALLOC, live[slot], draw(rng), 0)
        for ident in live:
            yield (FREE, ident, 0, 0)

    return generate


def _ramp(rng: random.Random, scale: int) -> Iterator[Op]:
    """Live bytes climb the whole run: nine allocations for each free."""
    ids = _Ids()
    live: list[int] = []
    draw = _uniform(16, 1024)
    for step in range(scale):
        if step % 10 == 9 and live:
            yield (FREE, live.pop(rng.randrange(len(live))), 0, 0)
        else:
            live.append(ids.new())
            yield (ALLOC, live[-1], draw(rng), 0)


def _peaks(rng: random.Random, scale: int) -> Iterator[Op]:
    """Bursts: build a large short-lived structure, tear it down, with a few survivors."""
    ids = _Ids()
    survivors: list[int] = []
    draw = _uniform(16, 2048)
    burst = max(1, scale // 20)
    emitted = 0
    while emitted < scale:
        batch = [ids.new() for _ in range(burst)]
        for ident in batch:
            yield (ALLOC, ident, draw(rng), 0)
        rng.shuffle(batch)
        keep = max(1, burst // 20)
        survivors.extend(batch[:keep])
        for ident in batch[keep:]:
            yield (FREE, ident, 0, 0)
        emitted += 2 * burst - keep
    for ident in survivors:
        yield (FREE, ident, 0, 0)


def _plateau(rng: random.Random, scale: int) -> Iterator[Op]:
    """Jump to a large working set early and hold it while a small set churns."""
    ids = _Ids()
    draw = _uniform(32, 4096)
    held = [ids.new() for _ in range(max(1, scale // 4))]
    for ident in held:
        yield (ALLOC, ident, draw(rng), 0)
    yield from _steady_state(_uniform(16, 256), max(1, scale // 40))(rng, scale // 2, ids)
    for ident in held:
        yield (FREE, ident, 0, 0)


def _larson(rng: random.Random, scale: int) -> Iterator[Op]:
    """Owners hand their objects to the next owner each round; the receiver frees some."""
    ids = _Ids()
    owners, slots = 4, 64
    draw = _uniform(8, 512)
    held = [[ids.new() for _ in range(slots)] for _ in range(owners)]
    for objects in held:
        for ident in objects:
            yield (ALLOC, ident, draw(rng), 0)
    per_round = owners * slots // 4
    for _ in range(max(0, (scale - 2 * owners * slots) // (2 * per_round))):
        held = held[1:] + held[:1]  # the exchange: every owner now holds its neighbour's objects
        for objects in held:
            for slot in rng.sample(range(slots), slots // 4):
                yield (FREE, objects[slot], 0, 0)
                objects[slot] = ids.new()
                yield (ALLOC, objects[slot], draw(rng), 0)
    for objects in held:
        for ident in objects:
            yield (FREE, ident, 0, 0)


def _realloc_growth(rng: random.Random, scale: int) -> Iterator[Op]:
    """Buffers grown by ``r`` in steps (as a vector or a string builder), among other traffic."""
    ids = _Ids()
    growing: dict[int, int] = {}
    others: list[int] = []
    for _ in range(scale // 3):
        if len(growing) < 16:
            ident = ids.new()
            growing[ident] = rng.randint(16, 128)
            yield (ALLOC, ident, growing[ident], 0)
        ident = rng.choice(list(growing))
        growing[ident] = growing[ident] * 3 // 2 + rng.randint(0, 64)
        if growing[ident] > 256 * 1024:
            yield (FREE, ident, 0, 0)
            del growing[ident]
        else:
            yield (REALLOC, ident, growing[ident], 0)
        if others and rng.random() < 0.5:
            yield (FREE, others.pop(rng.randrange(len(others))), 0, 0)
        else:
            others.append(ids.new())
            yield (ALLOC, others[-1], rng.randint(16, 512), 0)
    for ident in [*growing, *others]:
        yield (FREE, ident, 0, 0)


def _aligned(rng: random.Random, scale: int) -> Iterator[Op]:
    """Steady state where most requests carry an alignment between 16 and 4096."""
    ids = _Ids()
    alignments = (0, 16, 32, 64, 128, 256, 4096)
    live: list[int] = []
    for _ in range(scale // 2):
        if len(live) > 256 or (live and rng.random() < 0.45):
            yield (FREE, live.pop(rng.randrange(len(live))), 0, 0)
        live.append(ids.new())
        yield (ALLOC, live[-1], rng.randint(16, 1024), rng.choice(alignments))
    for ident in live:
        yield (FREE, ident, 0, 0)


def _batches(rng: random.Random, scale: int) -> Iterator[Op]:
    """``allocate_many`` bursts: a batch of equal sizes, batches freed whole in random order."""
    ids = _Ids()
    batches: list[list[int]] = []
    emitted = 0
    while emitted < scale:
        size, count = rng.randint(16, 512), rng.randint(8, 64)
        batch = [ids.new() for _ in range(count)]
        for ident in batch:
            yield (ALLOC, ident, size, 0)
        batches.append(batch)
        emitted += count
        if len(batches) > 8:
            for ident in batches.pop(rng.randrange(len(batches))):
                yield (FREE, ident, 0, 0)
                emitted += 1
    for batch in batches:
        for ident in batch:
            yield (FREE, ident, 0, 0)


def _adversarial(rng: random.Random, scale: int) -> Iterator[Op]:
    """Interleave small and large blocks, free every small one, then ask for large ones."""
    ids = _Ids()
    small, large = 64, 256
    pairs = max(1, scale // 12)  # 12 operations a pair over the two rounds
    rounds_live: list[int] = []
    for _ in range(2):
        smalls, larges = [], []
        for _ in range(pairs):
            smalls.append(ids.new())
            yield (ALLOC, smalls[-1], small, 0)
            larges.append(ids.new())
            yield (ALLOC, larges[-1], large, 0)
        for ident in smalls:
            yield (FREE, ident, 0, 0)
        for _ in range(pairs):
            rounds_live.append(ids.new())
            yield (ALLOC, rounds_live[-1], large + rng.randint(0, 16), 0)
        rounds_live.extend(larges)
    for ident in rounds_live:
        yield (FREE, ident, 0, 0)


def _lognormal(mu: float, sigma: float, scale: float) -> SizeDraw:
    return lambda rng: max(1, min(MAX_REQUEST, int(rng.lognormvariate(mu, sigma) * scale)))


def _small_objects(rng: random.Random) -> int:
    """99.7 % under 512 bytes (most of them small), the rest 512 bytes to 64 KiB."""
    if rng.random() < SMALL_OBJECT_SHARE:
        return min(511, max(1, int(rng.expovariate(1 / 96))))
    return rng.randint(512, 64 * 1024)


#: share of requests under 512 bytes in ``small_objects``
SMALL_OBJECT_SHARE = 0.997
#: the segment large_blocks runs in, and its large objects' share of it
LARGE_SEGMENT_SIZE = 16 << 20
LARGE_SHARE = (0.35, 0.45)


def _large_blocks(rng: random.Random, scale: int) -> Iterator[Op]:
    """Up to two large objects live, each replaced in turn, with small objects allocated
    between them that live across several large generations."""
    ids = _Ids()
    large: list[int] = []
    small: list[int] = []
    low, high = (int(share * LARGE_SEGMENT_SIZE) for share in LARGE_SHARE)
    emitted = 0
    while emitted < scale:
        if len(large) == 2:
            yield (FREE, large.pop(0), 0, 0)
            emitted += 1
        large.append(ids.new())
        yield (ALLOC, large[-1], rng.randint(low, high), 0)
        for _ in range(8):
            if len(small) > 64:
                yield (FREE, small.pop(rng.randrange(len(small))), 0, 0)
            small.append(ids.new())
            yield (ALLOC, small[-1], rng.randint(1024, 64 * 1024), 0)
        emitted += 17
    for ident in [*large, *small]:
        yield (FREE, ident, 0, 0)


#: the segment fill_to_failure runs in: small enough that its live bytes outgrow it
FILL_SEGMENT_SIZE = 256 * 1024


def _fill_to_failure(rng: random.Random, scale: int) -> Iterator[Op]:
    """Two allocations for each free until far past the segment's size."""
    ids = _Ids()
    live: list[int] = []
    draw = _uniform(16, 2048)
    for step in range(scale):
        if step % 3 == 2 and live:
            yield (FREE, live.pop(rng.randrange(len(live))), 0, 0)
        else:
            live.append(ids.new())
            yield (ALLOC, live[-1], draw(rng), 0)


# -- the catalogue -------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """A named load: its generator, a one-line description, and a segment size if it needs one."""

    name: str
    description: str
    make: Callable[[random.Random, int], Iterator[Op]]
    #: fixed segment size (bytes) for loads meant to run out of memory; None: sized from the peak
    segment_size: int | None = None


def _catalogue(*loads: Workload) -> dict[str, Workload]:
    return {load.name: load for load in loads}


WORKLOADS: dict[str, Workload] = _catalogue(
    Workload("uniform", "steady state, sizes uniform in 16..4096",
             _steady_state(_uniform(16, 4096), 500)),
    Workload("heavy_tailed", "steady state, Pareto(alpha 1.2) sizes from 16 bytes",
             _steady_state(_pareto(16, 1.2), 500)),
    Workload("small_churn", "steady state of many small objects (8..128 bytes)",
             _steady_state(_uniform(8, 128), 2000)),
    Workload("ramp", "Wilson et al.'s ramp: nine allocations a free", _ramp),
    Workload("peaks", "Wilson et al.'s peaks: bursts built and torn down", _peaks),
    Workload("plateau", "Wilson et al.'s plateau: a large set held while a small one churns",
             _plateau),
    Workload("larson", "Larson: objects exchanged between owners each round", _larson),
    Workload("realloc_growth", "buffers grown by realloc among other traffic", _realloc_growth),
    Workload("aligned", "steady state with alignments 16..4096", _aligned),
    Workload("batches", "allocate_many bursts freed a batch at a time", _batches),
    Workload("adversarial", "two sizes interleaved, every other freed, the larger asked for",
             _adversarial),
    Workload("fill_to_failure", "allocations outgrowing a 256 KiB segment", _fill_to_failure,
             segment_size=FILL_SEGMENT_SIZE),
    Workload("cv_uniform", f"steady state, mean {CV_MEAN}, uniform sizes (CV 0.58)",
             _steady_state(_uniform(1, 2 * CV_MEAN - 1), 500)),
    Workload("cv_exponential", f"steady state, mean {CV_MEAN}, exponential sizes (CV 1)",
             _steady_state(_exponential(CV_MEAN), 500)),
    Workload("cv_hyperexponential",
             f"steady state, mean {CV_MEAN}, hyperexponential sizes (CV about 3)",
             _steady_state(_hyperexponential, 500)),
    Workload("large_blocks", "objects of ~40% of a 16 MiB segment among small ones "
             "(Ray plasma store, ray#16164)", _large_blocks, segment_size=LARGE_SEGMENT_SIZE),
    Workload("small_objects", "steady state, 99.7% of sizes under 512 B (spring#1049)",
             _steady_state(_small_objects, 2000)),
    Workload("lognormal", "CPython test_heap: lognormal(0, 1) x 1000 B sizes, 50 live",
             _steady_state(_lognormal(0.0, 1.0, 1000.0), 50)),
)


def generate(name: str, seed: int, scale: int) -> list[Op]:
    """The operations of load ``name``; ``ValueError`` listing the known loads."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    return list(WORKLOADS[name].make(random.Random(f"{name}:{seed}"), scale))


def trace_from_ops(name: str, ops: list[Op]) -> Trace:
    """A ``Trace`` of ops with dense ids (peak figures computed as ``segalloc.bench.traces`` does)."""
    sizes: dict[int, int] = {}
    live = peak = peak_index = 0
    for index, (code, ident, size, _) in enumerate(ops):
        if code == FREE:
            live -= sizes.pop(ident, 0)
        elif code == ALLOC or ident in sizes:
            live += size - sizes.get(ident, 0)
            sizes[ident] = size
        if live > peak:
            peak, peak_index = live, index
    ids = 1 + max((ident for _, ident, _, _ in ops), default=-1)
    return Trace(name, ops, ids, peak, peak_index)


def workload_trace(name: str, seed: int, scale: int) -> Trace:
    """Load ``name`` as a ``Trace`` ready to replay."""
    return trace_from_ops(name, generate(name, seed, scale))


def coefficient_of_variation(sizes: list[int]) -> float:
    """Standard deviation over mean of request sizes (for checking the sweep)."""
    mean = sum(sizes) / len(sizes)
    return math.sqrt(sum((s - mean) ** 2 for s in sizes) / len(sizes)) / mean
