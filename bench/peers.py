"""The peers benchmark: the same jobs on segalloc and on what users would pick instead.

Jobs (``Counts`` sets their sizes; ``QUICK`` is for tests and CI):

- ``dict``: str -> int inserts, updates and gets, one call an item, on a ``SegmentDict`` in a
  heap segment and in a journaled shared-memory segment, on py-lmdb (one write transaction a
  store, one read transaction a load: what a user of a shared mapping writes; and, beside it,
  every operation of the job in one write transaction, as a bulk load), UltraDict and a
  ``multiprocessing.Manager().dict()``;
- ``list``: appends of ints one at a time, then one iteration over them, on ``SegmentVector``
  and ``SegmentList`` and a ``Manager().list()`` (UltraDict is a mapping: no list to append to);
- ``arrays``: named float64 arrays created and filled, then found by name and summed, with
  ``construct_array`` / ``find_array`` and with a ``multiprocessing.shared_memory`` block each
  (created, then attached by name and closed); needs numpy;
- ``scaling``: 1, 2, 4, 8 processes (spawned, started together by a barrier) repeating one
  operation on one shared object for a fixed time: allocate + free pairs and dict gets on one
  shared-memory segment, lmdb readers, UltraDict gets. The aggregate is every worker's
  operations over the span from the first start to the last stop.

Each job runs ``repeat`` times, every contender on a new object each time, one contender after
another within a round; a figure is the median of its runs. A peer that is not importable is
reported "not installed"; one that fails is reported with its error (segalloc's own failures
raise). Every contender's result is checked after its run (the dict holds every key with its
last value, the list every int in order, each array found holds what was written, the gets
returned the stored values, a segment is sane and has all its memory back) and the checks go in
the document. Timed loops run with the garbage collector off, as ``segalloc replay``'s.

The document (``run_peers``; ``segalloc peers --json``), version 1: ``kind``
("segalloc-peers"), ``version``, ``started``, ``wall_seconds``, ``environment``, ``build``
(``pure_python``, ``compiled``: the segalloc modules that ran compiled), ``parameters`` (the
``Counts``, ``repeat``, ``jobs``), ``jobs`` (one object a timed job: ``job``, ``title``,
``count``, ``operations``, ``reference``, ``contenders``: ``name``, ``package``, ``version``,
``setup``, ``status`` ("ok", "not installed", "error"), ``reason``, ``ops`` (per operation
``ns_per_op``, ``runs``, ``ratio`` = this ns / the reference's, the job's first contender, a
segalloc one), ``checks``, ``verified``), ``scaling`` (``processes``, ``seconds``, ``keys``,
``series``: ``name``, ``operation``, ``package``, ``version``, ``setup``, ``status``,
``reason``, ``points`` (``processes``, ``ops_per_second``, ``runs``, ``speedup`` over the
first process count's, 1 by default, ``speedup_runs``: each round's own ratio to the first
count's in the same round, ``cores_used``: the workers' CPU seconds over the span, the median
of the runs), ``checks``, ``verified``) and ``not_installed`` (the peer packages absent).
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import importlib
import multiprocessing
import queue
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, NamedTuple

__all__ = [
    "FULL",
    "JOBS",
    "KIND",
    "PEERS_VERSION",
    "QUICK",
    "SERIES",
    "Contender",
    "Counts",
    "Job",
    "Series",
    "Subject",
    "caption",
    "not_installed",
    "run_peers",
    "scaling_rows",
    "timed_rows",
    "verification_failures",
]

PEERS_VERSION = 1
KIND = "segalloc-peers"
MIB = 1 << 20


@dataclass(frozen=True)
class Counts:
    """How big each job is."""

    dict_keys: int = 10_000
    list_items: int = 100_000
    arrays: int = 1_000
    array_elements: int = 128
    processes: tuple[int, ...] = (1, 2, 4, 8)
    #: how long each scaling worker repeats its operation
    scaling_seconds: float = 1.0
    #: entries of the shared dict the scaling readers get from
    scaling_keys: int = 1_000


FULL = Counts()
QUICK = Counts(dict_keys=300, list_items=1_000, arrays=30, processes=(1, 2),
               scaling_seconds=0.05, scaling_keys=50)


class Subject(NamedTuple):
    """What a contender's job runs on, and how to tell afterwards that it is still sound."""

    target: Any
    #: for segalloc: the segment's deep check (None: the peer has none)
    sane: Callable[[], bool] | None = None


@dataclass(frozen=True)
class Contender:
    """One implementation of a job."""

    name: str
    #: the module that must import for it to run
    package: str
    #: how it is set up, for the report
    setup: str
    #: ``open(count, names)``: a context that yields the ``Subject`` and removes it on exit
    open: Callable[[int, _Names], contextlib.AbstractContextManager[Subject]]


@dataclass(frozen=True)
class Job:
    """A timed job: its operations, contenders (the first is the reference) and trial."""

    name: str
    title: str
    operations: tuple[str, ...]
    contenders: tuple[Contender, ...]
    count: Callable[[Counts], int]
    #: ``trial(target, count, counts)``: ns of each operation's whole loop, and the checks
    #: of the result
    trial: Callable[[Any, int, Counts], tuple[dict[str, int], dict[str, Any]]]
    #: ``checks, count -> verified``
    verify: Callable[[dict[str, Any], int], bool]
    #: modules every contender needs besides its own (numpy for the arrays)
    needs: tuple[str, ...] = ()


class _Names:
    """Unique names for the shared-memory objects and temporary folders of one run."""

    def __init__(self, token: str) -> None:
        self.prefix = f"segalloc-peers-{token}"
        self._made = 0

    def new(self, what: str) -> str:
        self._made += 1
        return f"{self.prefix}-{what}{self._made}"


# -- helpers -------------------------------------------------------------------------------
def _import(module: str) -> Any:
    """The module, or None when it cannot be imported (absent, or blocked)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _version(package: str) -> str | None:
    """The installed distribution's version (the interpreter's for the standard library)."""
    if package == "multiprocessing":
        return sys.version.split()[0]
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


class _Stopwatch:
    """Times the loops of a trial, one operation each, with the garbage collector off (as in
    ``segalloc replay``); ``elapsed`` holds the ns of each."""

    def __init__(self) -> None:
        self.elapsed: dict[str, int] = {}

    @contextlib.contextmanager
    def timing(self, operation: str) -> Iterator[None]:
        enabled = gc.isenabled()
        gc.disable()
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.elapsed[operation] = time.perf_counter_ns() - start
            if enabled:
                gc.enable()


def _segment_size(count: int, per_item: int) -> int:
    """Room for ``count`` items of about ``per_item`` bytes, twice over, plus 4 MiB (journal
    extents, tables), in whole MiB."""
    wanted = 2 * count * per_item + 4 * MIB
    return -(-wanted // MIB) * MIB


@contextlib.contextmanager
def _shared_segment(name: str, size: int) -> Iterator[Any]:
    """A new journaled shared-memory segment, closed and removed on exit."""
    from segalloc import ManagedSharedMemory, Mode

    segment = ManagedSharedMemory(Mode.CREATE_ONLY, name, size)
    try:
        yield segment
    finally:
        segment.close()
        ManagedSharedMemory.remove(name)


@contextlib.contextmanager
def _segment(shared: bool, size: int, names: _Names) -> Iterator[Any]:
    """A new segment: in journaled shared memory (removed on exit), or on the heap."""
    from segalloc import ManagedHeapMemory

    with (_shared_segment(names.new("segment"), size) if shared
          else ManagedHeapMemory(size)) as segment:
        yield segment


@contextlib.contextmanager
def _scratch_dir(names: _Names) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=names.new("dir") + "-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the dict job --------------------------------------------------------------------------
#: bytes a str -> int item costs in a segment (node, key, bucket), measured, with margin
_DICT_ITEM = 160


def _keys(count: int) -> list[str]:
    return [f"key-{index:07d}" for index in range(count)]


def _dict_trial(mapping: Any, count: int, counts: Counts) -> tuple[dict[str, int], dict[str, Any]]:
    """Insert ``count`` keys (value i), update each (value i + count), get each."""
    keys = _keys(count)
    watch = _Stopwatch()
    with watch.timing("insert"):
        for value, key in enumerate(keys):
            mapping[key] = value
    with watch.timing("update"):
        for value, key in enumerate(keys, count):
            mapping[key] = value
    total = 0
    with watch.timing("get"):
        for key in keys:
            total += mapping[key]
    checks = {"length": len(mapping),
              "right_values": sum(mapping[key] == value
                                  for value, key in enumerate(keys, count)),
              "get_sum_right": total == sum(range(count, 2 * count))}
    return watch.elapsed, checks


def _dict_verified(checks: dict[str, Any], count: int) -> bool:
    return bool(checks["length"] == checks["right_values"] == count and checks["get_sum_right"])


def _segalloc_dict(shared: bool) -> Callable[[int, _Names],
                                             contextlib.AbstractContextManager[Subject]]:
    @contextlib.contextmanager
    def open_dict(count: int, names: _Names) -> Iterator[Subject]:
        from segalloc import SegmentDict

        with _segment(shared, _segment_size(count, _DICT_ITEM), names) as segment:
            yield Subject(segment.construct(SegmentDict[str, int], "peers"),
                          segment.check_sanity)

    return open_dict


class _LmdbMapping:
    """str -> int on py-lmdb as its users write it: a write transaction a store, a read
    transaction a load, the int as 8 little-endian bytes."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def __setitem__(self, key: str, value: int) -> None:
        with self._env.begin(write=True) as txn:
            txn.put(key.encode(), value.to_bytes(8, "little", signed=True))

    def __getitem__(self, key: str) -> int:
        with self._env.begin() as txn:
            raw = txn.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return int.from_bytes(raw, "little", signed=True)

    def __len__(self) -> int:
        return int(self._env.stat()["entries"])


class _LmdbBulkMapping:
    """The same mapping with every operation in one open write transaction (how a bulk load
    is written; no other process sees a store before the commit at the end)."""

    def __init__(self, txn: Any) -> None:
        self._txn = txn

    def __setitem__(self, key: str, value: int) -> None:
        self._txn.put(key.encode(), value.to_bytes(8, "little", signed=True))

    def __getitem__(self, key: str) -> int:
        raw = self._txn.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return int.from_bytes(raw, "little", signed=True)

    def __len__(self) -> int:
        return int(self._txn.stat()["entries"])


#: lmdb's map: address space reserved, pages used as written (a sparse file)
_LMDB_MAP_SIZE = 1 << 30
_LMDB_SETUP = ("lmdb.open(dir, sync=False): no fsync at commit, as segalloc's shared memory "
               "has none")


@contextlib.contextmanager
def _lmdb_env(path: str, readonly: bool = False) -> Iterator[Any]:
    import lmdb

    env = lmdb.open(path, map_size=_LMDB_MAP_SIZE, sync=False, readonly=readonly)
    try:
        yield env
    finally:
        env.close()


@contextlib.contextmanager
def _lmdb_dict(count: int, names: _Names) -> Iterator[Subject]:
    with _scratch_dir(names) as path, _lmdb_env(path) as env:
        yield Subject(_LmdbMapping(env))


@contextlib.contextmanager
def _lmdb_bulk_dict(count: int, names: _Names) -> Iterator[Subject]:
    with _scratch_dir(names) as path, _lmdb_env(path) as env, env.begin(write=True) as txn:
        yield Subject(_LmdbBulkMapping(txn))


#: UltraDict's stream buffer: room for every update of the job between full dumps
def _ultra_buffer(count: int) -> int:
    return max(100_000, 64 * count)


@contextlib.contextmanager
def _ultradict(count: int, names: _Names) -> Iterator[Subject]:
    from UltraDict import UltraDict

    mapping = UltraDict(name=names.new("ultra"), create=True, buffer_size=_ultra_buffer(count))
    try:
        yield Subject(mapping)
    finally:
        mapping.unlink()


def _manager_proxy(kind: str) -> Callable[[int, _Names],
                                          contextlib.AbstractContextManager[Subject]]:
    """A ``Manager().dict()`` or ``.list()``, its server process shut down on exit."""

    @contextlib.contextmanager
    def open_proxy(count: int, names: _Names) -> Iterator[Subject]:
        manager = multiprocessing.get_context("spawn").Manager()
        try:
            yield Subject(getattr(manager, kind)())
        finally:
            manager.shutdown()

    return open_proxy


# -- the list job --------------------------------------------------------------------------
def _list_trial(sequence: Any, count: int,
                counts: Counts) -> tuple[dict[str, int], dict[str, Any]]:
    """Append 0 .. count-1 one at a time, then iterate over them once."""
    watch = _Stopwatch()
    with watch.timing("append"):
        for value in range(count):
            sequence.append(value)
    total = seen = 0
    in_order = True
    with watch.timing("iterate"):
        for value in sequence:
            in_order = in_order and value == seen
            total += value
            seen += 1
    checks = {"length": len(sequence), "iterated": seen, "in_order": in_order,
              "sum_right": total == count * (count - 1) // 2}
    return watch.elapsed, checks


def _list_verified(checks: dict[str, Any], count: int) -> bool:
    return bool(checks["length"] == checks["iterated"] == count and checks["in_order"]
                and checks["sum_right"])


#: bytes an int costs in a SegmentList node (the largest of the two containers), with margin
_LIST_ITEM = 64


def _segalloc_sequence(kind: str) -> Callable[[int, _Names],
                                              contextlib.AbstractContextManager[Subject]]:
    @contextlib.contextmanager
    def open_sequence(count: int, names: _Names) -> Iterator[Subject]:
        import segalloc

        container = getattr(segalloc, kind)[int]
        with _segment(False, _segment_size(count, _LIST_ITEM), names) as segment:
            yield Subject(segment.construct(container, "peers"), segment.check_sanity)

    return open_sequence


# -- the arrays job ------------------------------------------------------------------------
class _SegmentArrays:
    """Named arrays in a segment: ``construct_array`` + fill, ``find_array`` + sum."""

    def __init__(self, segment: Any) -> None:
        self._segment = segment

    def create(self, name: str, values: Any) -> None:
        array = self._segment.construct_array(name, values.shape, values.dtype)
        array[:] = values

    def find_sum(self, name: str) -> float:
        array = self._segment.find_array(name)
        return -1.0 if array is None else float(array.sum())


class _SharedMemoryArrays:
    """Named arrays as ``multiprocessing.shared_memory`` blocks: created and filled (and kept
    open, as the segment keeps its arrays), then attached by name, summed and closed."""

    def __init__(self, prefix: str) -> None:
        import numpy

        self._np = numpy
        self._prefix = prefix
        self._blocks: list[Any] = []

    def create(self, name: str, values: Any) -> None:
        from multiprocessing import shared_memory

        block = shared_memory.SharedMemory(f"{self._prefix}-{name}", create=True,
                                           size=values.nbytes)
        self._blocks.append(block)
        array = self._np.ndarray(values.shape, values.dtype, buffer=block.buf)
        array[:] = values
        del array  # a live view keeps close() from unmapping

    def find_sum(self, name: str) -> float:
        from multiprocessing import shared_memory

        try:
            block = shared_memory.SharedMemory(f"{self._prefix}-{name}")
        except FileNotFoundError:
            return -1.0
        array = self._np.ndarray((block.size // 8,), self._np.float64, buffer=block.buf)
        total = float(array.sum())
        del array
        block.close()
        return total

    def remove_all(self) -> None:
        for block in self._blocks:
            block.close()
            block.unlink()
        self._blocks.clear()


def _array_trial(arrays: Any, count: int,
                 counts: Counts) -> tuple[dict[str, int], dict[str, Any]]:
    """Create ``count`` arrays ("array-i", float64, ``counts.array_elements`` long, i + 0 ..
    i + n-1), then find each and sum it."""
    import numpy

    elements = counts.array_elements
    ramp = numpy.arange(elements, dtype=numpy.float64)
    values = [ramp + index for index in range(count)]
    names = [f"array-{index}" for index in range(count)]
    sums = []
    watch = _Stopwatch()
    with watch.timing("create"):
        for name, data in zip(names, values):
            arrays.create(name, data)
    with watch.timing("find"):
        for name in names:
            sums.append(arrays.find_sum(name))
    base = elements * (elements - 1) // 2
    checks = {"found": sum(total >= 0 for total in sums),
              "right_sums": sum(total == base + index * elements
                                for index, total in enumerate(sums))}
    return watch.elapsed, checks


def _arrays_verified(checks: dict[str, Any], count: int) -> bool:
    return bool(checks["found"] == checks["right_sums"] == count)


#: bytes a 128-element float64 array costs in a segment (data, header, alignment), with margin
_ARRAY_ITEM = 1_400


def _segalloc_arrays(shared: bool) -> Callable[[int, _Names],
                                               contextlib.AbstractContextManager[Subject]]:
    @contextlib.contextmanager
    def open_arrays(count: int, names: _Names) -> Iterator[Subject]:
        with _segment(shared, _segment_size(count, _ARRAY_ITEM), names) as segment:
            yield Subject(_SegmentArrays(segment), segment.check_sanity)

    return open_arrays


@contextlib.contextmanager
def _shared_memory_arrays(count: int, names: _Names) -> Iterator[Subject]:
    arrays = _SharedMemoryArrays(names.new("block"))
    try:
        yield Subject(arrays)
    finally:
        arrays.remove_all()


# -- the timed jobs ------------------------------------------------------------------------
_MANAGER_SETUP = "a Manager() server process; every operation is a round trip to it"
_ULTRA_SETUP = "UltraDict(create=True, buffer_size=64 B an item); default (process-local) lock"

JOBS: dict[str, Job] = {job.name: job for job in (
    Job("dict", "str -> int, one call an item", ("insert", "update", "get"), (
        Contender("segalloc heap", "segalloc", "SegmentDict[str, int] in a ManagedHeapMemory",
                  _segalloc_dict(shared=False)),
        Contender("segalloc shared memory", "segalloc",
                  "SegmentDict[str, int] in a ManagedSharedMemory (locked, journaled)",
                  _segalloc_dict(shared=True)),
        Contender("lmdb", "lmdb", f"{_LMDB_SETUP}; a write transaction an insert or update, "
                                  "a read transaction a get", _lmdb_dict),
        Contender("lmdb, one transaction", "lmdb",
                  f"{_LMDB_SETUP}; every operation in one write transaction, committed at the "
                  "end (a bulk load: no other process sees the stores until then)",
                  _lmdb_bulk_dict),
        Contender("UltraDict", "UltraDict", _ULTRA_SETUP, _ultradict),
        Contender("Manager dict", "multiprocessing", f"Manager().dict(): {_MANAGER_SETUP}",
                  _manager_proxy("dict")),
    ), lambda counts: counts.dict_keys, _dict_trial, _dict_verified),
    Job("list", "ints appended one at a time, then iterated", ("append", "iterate"), (
        Contender("segalloc vector", "segalloc", "SegmentVector[int] in a ManagedHeapMemory",
                  _segalloc_sequence("SegmentVector")),
        Contender("segalloc list", "segalloc", "SegmentList[int] in a ManagedHeapMemory",
                  _segalloc_sequence("SegmentList")),
        Contender("Manager list", "multiprocessing", f"Manager().list(): {_MANAGER_SETUP}",
                  _manager_proxy("list")),
    ), lambda counts: counts.list_items, _list_trial, _list_verified),
    Job("arrays", "named float64 arrays: create + fill, find by name + sum",
        ("create", "find"), (
            Contender("segalloc shared memory", "segalloc",
                      "construct_array / find_array in a ManagedSharedMemory (journaled)",
                      _segalloc_arrays(shared=True)),
            Contender("segalloc heap", "segalloc",
                      "construct_array / find_array in a ManagedHeapMemory",
                      _segalloc_arrays(shared=False)),
            Contender("shared_memory", "multiprocessing",
                      "a multiprocessing.shared_memory.SharedMemory block an array: created, "
                      "then attached by name and closed", _shared_memory_arrays),
        ), lambda counts: counts.arrays, _array_trial, _arrays_verified, needs=("numpy",)),
)}


def _absent(contender: Contender, needs: Sequence[str]) -> str | None:
    """Why the contender cannot run here (None: it can)."""
    for module in (*needs, contender.package):
        if _import(module) is None:
            return f"{module} not installed"
    return None


def _contender_entry(contender: Contender) -> dict[str, Any]:
    return {"name": contender.name, "package": contender.package,
            "version": _version(contender.package), "setup": contender.setup,
            "status": "ok", "reason": None, "ops": {}, "checks": {}, "verified": None}


def _run_timed_job(job: Job, counts: Counts, repeat: int, names: _Names,
                   progress: Callable[[str], None]) -> dict[str, Any]:
    count = job.count(counts)
    entries = [_contender_entry(contender) for contender in job.contenders]
    runs: list[dict[str, list[float]]] = [{op: [] for op in job.operations} for _ in entries]
    for entry, contender in zip(entries, job.contenders):
        reason = _absent(contender, job.needs)
        if reason is not None:
            entry.update(status="not installed", reason=reason)
    for round_ in range(repeat):
        for index, (entry, contender) in enumerate(zip(entries, job.contenders)):
            if entry["status"] != "ok":
                continue
            progress(f"{job.name}: {contender.name} ({round_ + 1}/{repeat})")
            try:
                with contender.open(count, names) as subject:
                    elapsed, checks = job.trial(subject.target, count, counts)
                    if subject.sane is not None:
                        checks["sane"] = subject.sane()
            except Exception as exc:
                if contender.package == "segalloc":
                    raise
                entry.update(status="error", reason=f"{type(exc).__name__}: {exc}")
                continue
            for op, ns in elapsed.items():
                runs[index][op].append(ns / count)
            verified = job.verify(checks, count) and checks.get("sane", True)
            entry["verified"] = verified if entry["verified"] is None else (
                entry["verified"] and verified)
            entry["checks"] = checks
    reference = entries[0]
    for entry, entry_runs in zip(entries, runs):
        if entry["status"] != "ok":
            continue
        entry["ops"] = {op: {"ns_per_op": statistics.median(values), "runs": values}
                        for op, values in entry_runs.items()}
    for entry in entries:
        for op, figures in entry["ops"].items():
            base = reference["ops"].get(op, {}).get("ns_per_op")
            figures["ratio"] = figures["ns_per_op"] / base if base else None
    return {"job": job.name, "title": job.title, "count": count,
            "operations": list(job.operations), "reference": reference["name"],
            "contenders": entries}


# -- the scaling job -----------------------------------------------------------------------
class _Prepared(NamedTuple):
    #: the shared-memory name or folder the workers attach to
    resource: str
    check: Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Series:
    """One operation repeated by every worker on one shared object."""

    name: str
    operation: str
    package: str
    setup: str
    #: parent: ``prepare(keys, names)`` makes the shared object, yields what the workers
    #: attach to and the final check (a dict of checks, with ``verified``), and removes it
    prepare: Callable[[int, _Names], contextlib.AbstractContextManager[_Prepared]]
    #: worker: ``attach(name, keys)`` opens it and yields ``step(j)``, which does one operation
    #: on key j and returns the value stored there (j itself: the dicts hold j under key j)
    attach: Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], int]]]


_SCALING_SEGMENT = 16 * MIB
#: bytes a scaling worker allocates and frees in each pair
_PAIR_SIZE = 64


@contextlib.contextmanager
def _prepare_segment(keys: int, names: _Names) -> Iterator[_Prepared]:
    from segalloc import SegmentDict

    name = names.new("scaling")
    with _shared_segment(name, _SCALING_SEGMENT) as segment:
        mapping = segment.construct(SegmentDict[str, int], "peers")
        for value, key in enumerate(_keys(keys)):
            mapping[key] = value
        free = segment.get_free_memory()

        def check() -> dict[str, Any]:
            back, sane = segment.get_free_memory() == free, segment.check_sanity()
            return {"free_memory_back": back, "sane": sane, "verified": back and sane}

        yield _Prepared(name, check)


@contextlib.contextmanager
def _open_segment(name: str) -> Iterator[Any]:
    from segalloc import ManagedSharedMemory, Mode

    with ManagedSharedMemory(Mode.OPEN_ONLY, name) as segment:
        yield segment


@contextlib.contextmanager
def _attach_pairs(name: str, keys: int) -> Iterator[Callable[[int], int]]:
    with _open_segment(name) as segment:
        allocate, deallocate = segment.allocate, segment.deallocate

        def step(j: int) -> int:
            deallocate(allocate(_PAIR_SIZE))
            return j

        yield step


def _getter(mapping: Any, keys: int) -> Callable[[int], int]:
    names = _keys(keys)

    def step(j: int) -> int:
        return int(mapping[names[j]])

    return step


@contextlib.contextmanager
def _attach_segment_dict(name: str, keys: int) -> Iterator[Callable[[int], int]]:
    from segalloc import SegmentDict

    with _open_segment(name) as segment:
        mapping, _ = segment.find(SegmentDict[str, int], "peers")
        yield _getter(mapping, keys)


def _no_check() -> dict[str, Any]:
    return {"verified": True}


@contextlib.contextmanager
def _prepare_lmdb(keys: int, names: _Names) -> Iterator[_Prepared]:
    with _scratch_dir(names) as path:
        with _lmdb_env(path) as env:
            mapping = _LmdbMapping(env)
            for value, key in enumerate(_keys(keys)):
                mapping[key] = value
        yield _Prepared(path, _no_check)


@contextlib.contextmanager
def _attach_lmdb(path: str, keys: int) -> Iterator[Callable[[int], int]]:
    with _lmdb_env(path, readonly=True) as env:
        yield _getter(_LmdbMapping(env), keys)


@contextlib.contextmanager
def _prepare_ultradict(keys: int, names: _Names) -> Iterator[_Prepared]:
    from UltraDict import UltraDict

    name = names.new("scaling")
    mapping = UltraDict(name=name, create=True, buffer_size=_ultra_buffer(keys))
    try:
        for value, key in enumerate(_keys(keys)):
            mapping[key] = value
        yield _Prepared(name, _no_check)
    finally:
        mapping.unlink()


@contextlib.contextmanager
def _attach_ultradict(name: str, keys: int) -> Iterator[Callable[[int], int]]:
    from UltraDict import UltraDict

    mapping = UltraDict(name=name, create=False)
    try:
        yield _getter(mapping, keys)
    finally:
        mapping.close()


SERIES: dict[str, Series] = {series.name: series for series in (
    Series("segalloc allocate + free", "allocate + free", "segalloc",
           f"allocate({_PAIR_SIZE}) + deallocate on one ManagedSharedMemory (each call takes "
           "its lock)", _prepare_segment, _attach_pairs),
    Series("segalloc dict get", "get", "segalloc",
           "SegmentDict[str, int] gets on one ManagedSharedMemory", _prepare_segment,
           _attach_segment_dict),
    Series("lmdb get", "get", "lmdb", "one read transaction a get, an Environment each worker",
           _prepare_lmdb, _attach_lmdb),
    Series("UltraDict get", "get", "UltraDict", "gets on one UltraDict, attached by each worker",
           _prepare_ultradict, _attach_ultradict),
)}

#: seconds a worker may take to start and reach the barrier
START_TIMEOUT = 120.0


class _Report(NamedTuple):
    """A worker's message: ready (no operations, no times), a point's figures, or an error."""

    worker: int
    operations: int = 0
    wrong: int = 0
    start: float = 0.0
    stop: float = 0.0
    #: CPU seconds the worker's thread ran in the point
    cpu: float = 0.0
    error: str | None = None


def _scaling_worker(series: str, resource: str, keys: int, seconds: float, index: int,
                    barriers: dict[int, Any], commands: Any, results: Any) -> None:
    """One worker of a crew: attach, warm up (a pass over the keys) and report ready, then
    for each command ``n`` (None: stop) wait at the barrier of ``n`` processes and repeat the
    operation over the keys until ``seconds`` have passed, reporting each ``_Report``."""
    try:
        with SERIES[series].attach(resource, keys) as step:
            for j in range(keys):
                step(j)
            gc.disable()
            results.put(_Report(index))
            while (processes := commands.get()) is not None:
                barriers[processes].wait(START_TIMEOUT)
                cpu = time.thread_time()
                start = now = time.perf_counter()
                deadline = start + seconds
                count = wrong = 0
                while now < deadline:
                    for j in range(keys):
                        if step(j) != j:
                            wrong += 1
                    count += keys
                    now = time.perf_counter()
                results.put(_Report(index, count, wrong, start, now, time.thread_time() - cpu))
    except BaseException as exc:  # noqa: B036 - the parent must hear of any end
        for barrier in barriers.values():
            barrier.abort()
        results.put(_Report(index, error=f"{type(exc).__name__}: {exc}"))


class _Point(NamedTuple):
    ops_per_second: float
    #: the workers' CPU seconds over the span: the cores they really had (on a shared
    #: machine n workers get n shares against other load, so more than a quiet machine's)
    cores: float
    wrong: int


class _Crew:
    """As many spawned workers as the largest point needs, attached once; a point sets the
    first ``n`` of them going together (a barrier of ``n`` parties each point size)."""

    def __init__(self, series: Series, resource: str, keys: int, seconds: float,
                 sizes: Sequence[int]) -> None:
        context = multiprocessing.get_context("spawn")
        self._series, self._seconds = series, seconds
        # kept for the crew's life: a spawned child unpickles them after start() returns
        self._barriers = barriers = {n: context.Barrier(n) for n in sizes}
        self._results = context.Queue()
        self._commands = [context.Queue() for _ in range(max(sizes))]
        self._workers = [
            context.Process(target=_scaling_worker, daemon=True,
                            args=(series.name, resource, keys, seconds, index, barriers,
                                  commands, self._results))
            for index, commands in enumerate(self._commands)]
        for worker in self._workers:
            worker.start()
        try:  # no point starts while a worker is still starting (it would take a core)
            self._reports(len(self._workers), START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def run(self, processes: int) -> _Point:
        """The first ``processes`` workers' point: every operation over the span from the
        first start to the last stop."""
        for commands in self._commands[:processes]:
            commands.put(processes)
        reports = self._reports(processes, self._seconds + START_TIMEOUT)
        span = max(report.stop for report in reports) - min(report.start for report in reports)
        return _Point(sum(report.operations for report in reports) / span,
                      sum(report.cpu for report in reports) / span,
                      sum(report.wrong for report in reports))

    def _reports(self, processes: int, timeout: float) -> list[_Report]:
        """The reports of the first ``processes`` workers; a worker that failed, or ended
        without reporting (killed, or dead before it could run), fails at once."""
        reports: list[_Report] = []
        deadline = time.monotonic() + timeout
        while len(reports) < processes:
            try:
                report = self._results.get(timeout=0.2)
            except queue.Empty:
                pass
            else:
                if report.error:
                    raise RuntimeError(f"{self._series.name}: a worker failed: {report.error}")
                reports.append(report)
                continue
            reported = {report.worker for report in reports}
            dead = [worker for index, worker in enumerate(self._workers[:processes])
                    if worker.exitcode is not None and index not in reported]
            if dead and self._results.empty():  # else its report is still in the pipe
                time.sleep(0.5)
                if self._results.empty():
                    raise RuntimeError(f"{self._series.name}: a worker ended (exit code "
                                       f"{dead[0].exitcode}) without reporting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self._series.name}: a worker did not report within "
                                   f"{timeout:g} s")
        return reports

    def close(self) -> None:
        """Stop the workers (those that do not stop are terminated)."""
        for commands in self._commands:
            commands.put(None)
        for worker in self._workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.terminate()
                worker.join()
        self._results.close()
        for commands in self._commands:
            commands.close()
            commands.join_thread()


def _run_series(series: Series, counts: Counts, repeat: int, names: _Names,
                progress: Callable[[str], None]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": series.name, "operation": series.operation, "package": series.package,
        "version": _version(series.package), "setup": series.setup, "status": "ok",
        "reason": None, "points": [], "checks": {}, "verified": None}
    if _import(series.package) is None:
        entry.update(status="not installed", reason=f"{series.package} not installed")
        return entry
    runs: dict[int, list[_Point]] = {n: [] for n in counts.processes}
    try:
        with series.prepare(counts.scaling_keys, names) as (resource, final_check):
            crew = _Crew(series, resource, counts.scaling_keys, counts.scaling_seconds,
                         counts.processes)
            try:
                for round_ in range(repeat):
                    for processes in counts.processes:
                        progress(f"scaling: {series.name}, {processes} process"
                                 f"{'es' if processes > 1 else ''} ({round_ + 1}/{repeat})")
                        runs[processes].append(crew.run(processes))
            finally:
                crew.close()
            checks = final_check()
    except Exception as exc:
        if series.package == "segalloc":
            raise
        entry.update(status="error", reason=f"{type(exc).__name__}: {exc}")
        return entry
    checks["wrong_values"] = sum(point.wrong for points in runs.values() for point in points)
    entry["verified"] = bool(checks.pop("verified")) and checks["wrong_values"] == 0
    entry["checks"] = checks
    rates = {n: [point.ops_per_second for point in points] for n, points in runs.items()}
    base = rates[counts.processes[0]]
    one = statistics.median(base)
    entry["points"] = [
        {"processes": n, "ops_per_second": statistics.median(rates[n]), "runs": rates[n],
         "speedup": statistics.median(rates[n]) / one if one else None,
         # each round runs every count back to back: its own ratio, free of the drift of a
         # shared machine between rounds (the spread is what a reader weighs the median by)
         "speedup_runs": [rate / first if first else None for rate, first in zip(rates[n], base)],
         "cores_used": statistics.median(point.cores for point in points)}
        for n, points in runs.items()]
    return entry


# -- the run -------------------------------------------------------------------------------
def _build() -> dict[str, Any]:
    from segalloc import PURE_PYTHON, is_compiled

    compiled = sorted(name for name, module in list(sys.modules.items())
                      if name.startswith("segalloc") and module is not None
                      and is_compiled(module))
    return {"pure_python": PURE_PYTHON, "compiled": compiled}


def run_peers(counts: Counts = FULL, repeat: int = 3, jobs: Sequence[str] | None = None,
              quick: bool = False, token: str | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the jobs (default: every timed job and ``scaling``) and return the document.
    ``token`` makes the run's shared-memory and temporary names unique (default: random)."""
    from segalloc.bench.runner import environment

    known = [*JOBS, "scaling"]
    for name in jobs or ():
        if name not in known:
            raise ValueError(f"unknown job {name!r}; known: {', '.join(known)}")
    chosen = [name for name in known if not jobs or name in jobs]  # in their order, once
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if not all(n >= 1 for n in counts.processes) or counts.scaling_seconds <= 0:
        raise ValueError("scaling needs process counts of at least 1 and a positive duration")
    names = _Names(token or uuid.uuid4().hex[:12])
    say = progress or (lambda _: None)
    started = datetime.datetime.now(datetime.timezone.utc)
    clock = time.perf_counter()
    timed = [_run_timed_job(JOBS[name], counts, repeat, names, say)
             for name in chosen if name in JOBS]
    scaling = None
    if "scaling" in chosen:
        scaling = {"processes": list(counts.processes), "seconds": counts.scaling_seconds,
                   "keys": counts.scaling_keys,
                   "series": [_run_series(series, counts, repeat, names, say)
                              for series in SERIES.values()]}
    document = {
        "kind": KIND, "version": PEERS_VERSION,
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - clock, 3),
        "environment": environment(), "build": _build(),
        "parameters": {**asdict(counts), "processes": list(counts.processes),
                       "repeat": repeat, "jobs": chosen, "quick": quick},
        "jobs": timed, "scaling": scaling,
    }
    document["not_installed"] = not_installed(document)
    return document


# -- rows for the terminal and the report --------------------------------------------------
Rows = tuple[list[str], list[list[Any]]]


def not_installed(document: dict[str, Any]) -> list[str]:
    """The peer packages (or needed modules) that were absent, each once."""
    entries = [entry for job in document["jobs"] for entry in job["contenders"]]
    entries += (document.get("scaling") or {}).get("series", [])
    return sorted({entry["reason"].removesuffix(" not installed") for entry in entries
                   if entry["status"] == "not installed"})


def _status_text(entry: dict[str, Any]) -> str:
    """What a table shows for a contender that did not run: "lmdb not installed", "numpy not
    installed" (segalloc's arrays need it), "error: ..."."""
    return entry["reason"] if entry["status"] == "not installed" else f"error: {entry['reason']}"


def timed_rows(job: dict[str, Any]) -> Rows:
    """One row a contender: µs an operation and its ratio to the reference, per operation."""
    headers = ["contender"]
    for op in job["operations"]:
        headers += [f"{op} µs", f"{op} / ref"]
    headers.append("verified")
    rows = []
    for entry in job["contenders"]:
        row: list[Any] = [entry["name"]]
        if entry["status"] != "ok":
            rows.append(row + [_status_text(entry)] + [None] * (2 * len(job["operations"])))
            continue
        for op in job["operations"]:
            figures = entry["ops"][op]
            row += [figures["ns_per_op"] / 1000, figures["ratio"]]
        rows.append(row + ["yes" if entry["verified"] else "NO"])
    return headers, rows


def scaling_rows(scaling: dict[str, Any]) -> Rows:
    """One row a series: aggregate operations a second per process count, then each count's
    speedup over the first count's (the ratio of the medians) and the range of the rounds' own
    ratios."""
    counts = scaling["processes"]
    headers = ["series", *(f"{n} proc ops/s" for n in counts),
               *(f"{n} / {counts[0]}" for n in counts[1:]),
               *(f"{n} / {counts[0]} per round" for n in counts[1:]),
               f"cores used ({' / '.join(map(str, counts))})", "verified"]
    rows = []
    for entry in scaling["series"]:
        if entry["status"] != "ok":
            rows.append([entry["name"], _status_text(entry), *[None] * (3 * len(counts) - 1)])
            continue
        points = {point["processes"]: point for point in entry["points"]}
        rows.append([entry["name"], *(round(points[n]["ops_per_second"]) for n in counts),
                     *(points[n]["speedup"] for n in counts[1:]),
                     *(_spread(points[n]["speedup_runs"]) for n in counts[1:]),
                     " / ".join(f"{points[n]['cores_used']:.2f}" for n in counts),
                     "yes" if entry["verified"] else "NO"])
    return headers, rows


def _spread(ratios: Sequence[float | None]) -> str:
    """``low-high`` of the rounds' ratios (one value for one round)."""
    known = [ratio for ratio in ratios if ratio is not None]
    if not known:
        return "-"
    low, high = min(known), max(known)
    return f"{low:.2f}" if low == high else f"{low:.2f}-{high:.2f}"


def verification_failures(document: dict[str, Any]) -> list[str]:
    """A line for each contender whose result did not check out."""
    entries = [(job["job"], entry) for job in document["jobs"] for entry in job["contenders"]]
    entries += [("scaling", entry) for entry in (document.get("scaling") or {}).get("series", [])]
    return [f"{job}: {entry['name']}: result wrong: {entry['checks']}"
            for job, entry in entries if entry["status"] == "ok" and not entry["verified"]]


def caption(document: dict[str, Any]) -> str:
    """What the tables show, in one paragraph."""
    params = document["parameters"]
    build = document["build"]
    which = ("interpreted (SEGALLOC_PURE_PYTHON=1)" if build["pure_python"]
             else f"compiled modules: {', '.join(build['compiled']) or 'none'}")
    return (f"Time of one operation (µs), the median of {params['repeat']} run(s), each on a new "
            "object; '/ ref' is that time over the job's first contender's (a segalloc one), "
            f"measured in the same run: above 1 is slower than segalloc. segalloc build: {which}. "
            "Scaling: workers spawned and started together, each repeating the operation for "
            f"{params['scaling_seconds']:g} s; ops/s is every worker's operations over the span "
            "from the first start to the last stop; cores used is their CPU time over that "
            "span (below the process count on a machine busy with other work, where n "
            "processes also get n shares of it).")
