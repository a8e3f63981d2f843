"""The nine documented scenarios (``../shared/seed/SCENARIOS.md``) as harness cells.

Each scenario is a function ``(algorithm, backend, scratch) -> ScenarioResult``: it runs the
Boost.Interprocess example it is named after on one registered algorithm and backend, checks
what SCENARIOS.md says it must, and records the figures it observed under the names of
``segalloc.bench.boost_figures`` so they can be set beside Boost's. A failed check is a ``failed``
result naming that check, an unexpected exception a ``failed`` result naming the exception;
neither stops the run. A scenario that needs a kind of backend it was not given (growing while
unmapped, copy-on-write files, a caller's buffer, a heap that grows while open) is
``not_applicable`` and says why.

Segments are built through the managed class of the registered backend, so a scenario works on
any backend of the same kind (see ``BackendKind``), third-party ones included.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import functools
import itertools
import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segalloc import (
    ANONYMOUS,
    UNIQUE,
    BadAlloc,
    Command,
    InstanceType,
    Mode,
    ReadOnlySegment,
    Segment,
    Storage,
    plugins,
)
from segalloc.bench.boost_figures import BOOST_COUNTERPART, boost_figures
from segalloc.managed import managed_class
from segalloc.objects import type_name

__all__ = [
    "SCENARIOS",
    "BackendKind",
    "Scenario",
    "ScenarioResult",
    "Status",
    "backend_kind",
    "run_scenarios",
]

ELEMENT = 8  # bytes of Boost's std::size_t, the unit of scenario 6's sizes
_PROBE_SIZE = 4096
_unique_names = itertools.count()


class Status(str, enum.Enum):
    """A cell's outcome (the JSON ``status``)."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True)
class ScenarioResult:
    """What one scenario observed on one algorithm x backend."""

    status: Status
    reason: str | None
    figures: dict[str, int] = field(default_factory=dict)


class BackendKind(enum.Enum):
    """What a scenario may do with a backend's segments."""

    HEAP = "heap"  # private memory that grows while open (the memory may move)
    EXTERNAL = "external"  # a buffer the caller owns; a byte copy opens as the same segment
    NAMED = "named"  # found by a name outside the file system; resized only while unmapped
    FILE = "file"  # found by a file-system path; resized only while unmapped


def backend_kind(storage_class: type[Storage], scratch: Path) -> BackendKind:
    """The kind of a registered storage class, from what it declares and overrides; for a
    named backend, whether a name given as a path in ``scratch`` makes that file."""
    if storage_class.named:
        return BackendKind.FILE if _names_are_paths(storage_class, scratch) else BackendKind.NAMED
    if storage_class.grow_in_place is not Storage.grow_in_place:
        return BackendKind.HEAP
    return BackendKind.EXTERNAL


def _names_are_paths(storage_class: type[Storage], scratch: Path) -> bool:
    """Create a small backing object named by a path: a backend that refuses the name or does
    not make that file names its objects otherwise (shared memory)."""
    probe = scratch / f"probe-{os.getpid()}-{next(_unique_names)}"
    try:
        storage = storage_class.open(Mode.CREATE_ONLY, str(probe), _PROBE_SIZE)
    except (ValueError, OSError):
        return False
    try:
        return probe.is_file()
    finally:
        storage.discard()


class MyClass(ctypes.Structure):
    """The user struct of the examples (Boost's ``my_class`` is empty; a field gives ours a
    size, so arrays of it take room)."""

    _fields_ = [("value", ctypes.c_int)]


class _CheckFailed(Exception):
    """A scenario's check did not hold: the cell fails with this reason."""


class _NotApplicable(Exception):
    """The backend is not of the kind the scenario needs."""


class _Run:
    """One cell in progress: the managed class to build segments with, the figures recorded
    so far (kept when a later check fails) and the checks."""

    def __init__(self, algorithm: str, backend: str, scratch: Path) -> None:
        plugins().algorithm(algorithm)  # an unknown name fails before anything is built
        self.storage_class = plugins().backend(backend)
        self.algorithm = algorithm
        self.managed: Any = managed_class(self.storage_class)
        self.scratch = scratch
        self.figures: dict[str, int] = {}

    @functools.cached_property
    def kind(self) -> BackendKind:
        """The backend's kind, found inside the scenario so a probe that raises fails the cell."""
        return backend_kind(self.storage_class, self.scratch)

    def check(self, condition: bool, reason: str) -> None:
        """Fail the scenario with ``reason`` unless ``condition`` holds."""
        if not condition:
            raise _CheckFailed(reason)

    def needs(self, kinds: Sequence[BackendKind], why: str) -> None:
        """Mark the cell not applicable unless the backend is of one of ``kinds``."""
        if self.kind not in kinds:
            raise _NotApplicable(why)

    def backing_name(self, stem: str) -> str:
        """A name no other cell uses: a file in the scratch directory, or a unique object name."""
        unique = f"{stem}-{os.getpid()}-{next(_unique_names)}"
        if self.kind is BackendKind.FILE:
            return str(self.scratch / f"{unique}.segment")
        return f"segalloc-scenario-{unique}"

    @contextlib.contextmanager
    def segment(self, size: int) -> Iterator[Segment]:
        """A new segment of ``size`` bytes on this backend, closed (and its backing object
        removed) afterwards."""
        algorithm = self.algorithm
        if self.kind is BackendKind.HEAP:
            with self.managed(size, algorithm=algorithm) as segment:
                yield segment
        elif self.kind is BackendKind.EXTERNAL:
            with self.managed(Mode.CREATE_ONLY, bytearray(size), algorithm=algorithm) as segment:
                yield segment
        else:
            with self.named_object("segment") as name:
                with self.managed(Mode.CREATE_ONLY, name, size, algorithm=algorithm) as segment:
                    yield segment

    @contextlib.contextmanager
    def named_object(self, stem: str) -> Iterator[str]:
        """A fresh backing-object name, removed afterwards whatever happened."""
        name = self.backing_name(stem)
        try:
            yield name
        finally:
            self.managed.remove(name)

    def fill_until_bad_alloc(self, insert: Callable[[], None], limit: int) -> int:
        """Call ``insert`` until it raises ``BadAlloc``; the number of calls that succeeded.
        ``limit`` bounds the loop so an allocator that never runs out fails instead of hanging."""
        for done in range(limit):
            try:
                insert()
            except BadAlloc:
                return done
        raise _CheckFailed(f"{limit} inserts succeeded without BadAlloc")


ScenarioFunction = Callable[[str, str, Path], ScenarioResult]
_ScenarioBody = Callable[["_Run"], None]


@dataclass(frozen=True)
class Scenario:
    """One documented scenario: its number, English title, the seed's heading and its code."""

    number: int
    title: str
    heading: str
    run: ScenarioFunction


SCENARIOS: list[Scenario] = []


def _scenario(number: int, title: str, heading: str) -> Callable[[_ScenarioBody], ScenarioFunction]:
    """Make a scenario function from a body that checks and records through a ``_Run``."""

    def wrap(body: _ScenarioBody) -> ScenarioFunction:
        def run(algorithm: str, backend: str, scratch: Path) -> ScenarioResult:
            cell = _Run(algorithm, backend, scratch)
            try:
                body(cell)
            except _NotApplicable as why:
                return ScenarioResult(Status.NOT_APPLICABLE, str(why), cell.figures)
            except _CheckFailed as failed:
                return ScenarioResult(Status.FAILED, str(failed), cell.figures)
            except Exception as exc:  # a scenario that raises is a failed cell, not a crash
                return ScenarioResult(Status.FAILED, f"{type(exc).__name__}: {exc}", cell.figures)
            return ScenarioResult(Status.PASSED, None, cell.figures)

        run.__name__ = body.__name__
        run.__qualname__ = body.__qualname__
        run.__doc__ = body.__doc__
        SCENARIOS.append(Scenario(number, title, heading, run))
        return run

    return wrap


def _check_sane(segment: Segment) -> None:
    try:
        segment.verify()
    except Exception as exc:
        raise _CheckFailed(f"the segment is not sane afterwards: {exc}") from exc


# -- 1 ----------------------------------------------------------------------------------------
@_scenario(1, "allocate and free", "分配释放内存段")
def allocate_and_free(run: _Run) -> None:
    """allocate(100) and deallocate, throwing and nothrow; free memory comes back."""
    with run.segment(65536) as segment:
        created = run.figures["free_after_create"] = segment.get_free_memory()
        handle = segment.allocate(100)
        run.figures["free_after_allocate_100"] = segment.get_free_memory()
        run.check(segment.get_free_memory() < created,
                  "free memory did not drop after allocate(100)")
        segment.deallocate(handle)
        run.check(segment.get_free_memory() == created,
                  f"free memory after deallocate is {segment.get_free_memory()}, "
                  f"not {created} as after creation")
        spared = segment.allocate(100, nothrow=True)
        run.check(spared is not None, "allocate(100, nothrow=True) returned None")
        assert spared is not None
        segment.deallocate(spared)
        run.check(segment.get_free_memory() == created,
                  f"free memory after the nothrow pair is {segment.get_free_memory()}, "
                  f"not {created} as after creation")
        _check_sane(segment)


# -- 2 ----------------------------------------------------------------------------------------
@_scenario(2, "object name, kind, length", "对象名称类型长度")
def object_name_kind_length(run: _Run) -> None:
    """Named, unique and anonymous arrays of a user struct: their names, kinds and lengths."""
    with run.segment(10000 * ELEMENT) as segment:
        named = segment.construct(MyClass, "Object name", count=1)
        unique = segment.construct(MyClass, UNIQUE, count=2)
        anonymous = segment.construct(MyClass, ANONYMOUS, count=3)
        expected = [
            ("named", named, "Object name", InstanceType.NAMED, 1),
            ("unique", unique, type_name(MyClass), InstanceType.UNIQUE, 2),
            ("anonymous", anonymous, None, InstanceType.ANONYMOUS, 3),
        ]
        for label, obj, name, kind, length in expected:
            got_name = segment.get_instance_name(obj)
            run.check(got_name == name, f"get_instance_name of the {label} object is "
                                        f"{got_name!r}, not {name!r}")
            got_kind = segment.get_instance_type(obj)
            run.check(got_kind is kind, f"get_instance_type of the {label} object is "
                                        f"{got_kind}, not {kind}")
            got_length = segment.get_instance_length(obj)
            run.check(got_length == length, f"get_instance_length of the {label} object is "
                                            f"{got_length}, not {length}")
        run.figures["free_with_three_objects"] = segment.get_free_memory()
        for _, obj, *_ in expected:
            segment.destroy_ptr(obj)
        run.figures["free_after_destroy"] = segment.get_free_memory()
        run.check(segment.num_named_objects() == 0 and not segment.unique_objects(),
                  "destroy_ptr left a named or unique object in the index")
        run.check(segment.all_memory_deallocated(),
                  "destroy_ptr of all three left memory allocated")
        _check_sane(segment)


# -- 3 ----------------------------------------------------------------------------------------
#: bytes of scenario 3's segment. Boost's example uses 1000; a shared-memory or file segment of
#: segalloc carries an undo journal (its base extent, 1/32 of a small segment, at least 32
#: entries of 16 bytes), and a first construct logs about 36 entries, so 1000 bytes hold the
#: journal but not the object: the scenario runs at twice Boost's size, the same steps.
GROW_SCENARIO_SIZE = 2000
GROW_SCENARIO_EXTRA = 500


@_scenario(3, "a segment can grow", "内存段可以增长")
def segment_can_grow(run: _Run) -> None:
    """A named segment (GROW_SCENARIO_SIZE bytes) grows by 500 and shrinks to fit while
    unmapped; the named object survives both."""
    run.needs((BackendKind.NAMED, BackendKind.FILE),
              "needs a named backend that grows while unmapped")
    managed = run.managed
    size, grown = GROW_SCENARIO_SIZE, GROW_SCENARIO_SIZE + GROW_SCENARIO_EXTRA
    with run.named_object("grow") as name:
        with managed(Mode.CREATE_ONLY, name, size, algorithm=run.algorithm) as segment:
            run.check(segment.get_size() == size,
                      f"a {size}-byte segment has size {segment.get_size()}")
            segment.construct(MyClass, "MyClass")
            run.figures["free_with_named_object"] = segment.get_free_memory()
        managed.grow(name, GROW_SCENARIO_EXTRA)
        with managed(Mode.OPEN_ONLY, name) as segment:
            run.figures["size_after_grow"] = segment.get_size()
            run.figures["free_after_grow"] = segment.get_free_memory()
            run.check(segment.get_size() == grown,
                      f"after grow(+{GROW_SCENARIO_EXTRA}) the size is {segment.get_size()}, "
                      f"not {grown}")
            run.check(segment.find(MyClass, "MyClass")[0] is not None,
                      "'MyClass' is not found after grow")
            _check_sane(segment)
        managed.shrink_to_fit(name)
        with managed(Mode.OPEN_ONLY, name) as segment:
            run.figures["size_after_shrink_to_fit"] = segment.get_size()
            run.figures["free_after_shrink_to_fit"] = segment.get_free_memory()
            run.check(segment.get_size() < size,
                      f"after shrink_to_fit the size is {segment.get_size()}, not < {size}")
            run.check(segment.find(MyClass, "MyClass")[0] is not None,
                      "'MyClass' is not found after shrink_to_fit")
            _check_sane(segment)


# -- 4 ----------------------------------------------------------------------------------------
ALIGNMENT_ASKED = 128


@_scenario(4, "aligned allocation", "分配时指定对齐")
def aligned_allocation(run: _Run) -> None:
    """allocate_aligned(100, 128) throwing and nothrow, then the size that wastes least."""
    cls = plugins().algorithm(run.algorithm)
    payload = run.figures["PAYLOAD_PER_ALLOCATION"] = cls.PAYLOAD_PER_ALLOCATION
    run.figures["ALIGNMENT"] = cls.ALIGNMENT
    with run.segment(65536) as segment:
        run.check(ALIGNMENT_ASKED > payload,
                  f"PAYLOAD_PER_ALLOCATION {payload} is not below the alignment {ALIGNMENT_ASKED}")
        least_waste = 3 * ALIGNMENT_ASKED - payload
        for label, size, nothrow in [("throwing", 100, False), ("nothrow", 100, True),
                                     ("least-waste", least_waste, False)]:
            handle = segment.allocate_aligned(size, ALIGNMENT_ASKED, nothrow=nothrow)
            run.check(handle is not None, f"{label} allocate_aligned({size}, 128) returned None")
            assert handle is not None
            run.check(handle % ALIGNMENT_ASKED == 0,
                      f"{label} allocate_aligned({size}, 128) gave handle {handle}, not aligned")
            if segment.storage.base_alignment >= ALIGNMENT_ASKED:
                address = segment.get_address_from_handle(handle)
                run.check(address % ALIGNMENT_ASKED == 0,
                          f"{label} allocate_aligned({size}, 128) gave address {address:#x}, "
                          "not aligned")
            segment.deallocate(handle)
        run.check(segment.all_memory_deallocated(), "memory is left allocated after the frees")
        _check_sane(segment)


# -- 5 ----------------------------------------------------------------------------------------
@_scenario(5, "many buffers at once", "一次分配多个缓冲区")
def many_buffers_at_once(run: _Run) -> None:
    """allocate_many of 16 x 100 bytes (nothrow) freed one by one, then 10 sizes freed at once."""
    with run.segment(65536) as segment:
        run.figures["free_after_create"] = segment.get_free_memory()
        handles = segment.allocate_many(100, count=16, nothrow=True)
        run.check(bool(handles), "allocate_many(100, count=16, nothrow=True) failed")
        run.check(len(handles) == 16, f"allocate_many(100, count=16) gave {len(handles)} buffers")
        run.figures["free_after_16_buffers"] = segment.get_free_memory()
        for handle in handles:
            segment.view(handle, 100)[:] = bytes(100)
        while handles:
            segment.deallocate(handles.pop())
        sizes = [3 * i for i in range(10)]
        handles = segment.allocate_many(sizes)
        run.check(len(handles) == 10, f"allocate_many of 10 sizes gave {len(handles)} buffers")
        received = [segment.usable_size(handle) for handle in handles]
        run.check(all(got >= size for got, size in zip(received, sizes, strict=True)),
                  f"allocate_many of sizes {sizes} gave buffers of {received} bytes")
        segment.deallocate_many(handles)
        run.check(segment.all_memory_deallocated(), "memory is left allocated after the frees")
        _check_sane(segment)


# -- 6 ----------------------------------------------------------------------------------------
@_scenario(6, "resize in place", "可以重新调整内存大小")
def resize_in_place(run: _Run) -> None:
    """allocate_new 100..1000 elements, expand forward 2x..3x, shrink in place to 2x..4x of the
    first size; the same block throughout and the data intact."""
    with run.segment(10000 * ELEMENT) as segment:
        handle, first = segment.allocation_command(Command.ALLOCATE_NEW, 100 * ELEMENT,
                                                   1000 * ELEMENT)
        run.figures["received_allocate_new"] = first // ELEMENT
        run.check(handle is not None and first >= 100 * ELEMENT,
                  f"allocate_new received {first} bytes, below the limit {100 * ELEMENT}")
        assert handle is not None
        free_after_allocation = segment.get_free_memory()
        _write_counting(segment, handle, 0, first // ELEMENT)

        offset, expanded = segment.allocation_command(Command.EXPAND_FWD, 2 * first, 3 * first,
                                                      handle)
        run.figures["received_expand_fwd"] = expanded // ELEMENT
        run.check(offset == handle, f"expand_fwd moved the block from {handle} to {offset}")
        run.check(expanded >= 2 * first,
                  f"expand_fwd received {expanded} bytes, below the limit {2 * first}")
        free_after_expansion = segment.get_free_memory()
        run.check(free_after_expansion < free_after_allocation,
                  "free memory did not drop after expand_fwd")
        run.check(_counting_intact(segment, handle, first // ELEMENT),
                  "the data written before expand_fwd changed")
        _write_counting(segment, handle, first // ELEMENT, expanded // ELEMENT)

        offset, shrunk = segment.allocation_command(Command.SHRINK_IN_PLACE, 4 * first, 2 * first,
                                                    handle)
        run.figures["received_shrink_in_place"] = shrunk // ELEMENT
        run.check(offset == handle, f"shrink_in_place moved the block from {handle} to {offset}")
        run.check(2 * first <= shrunk <= 4 * first,
                  f"shrink_in_place received {shrunk} bytes, outside [{2 * first}, {4 * first}]")
        run.check(segment.get_free_memory() > free_after_expansion,
                  "free memory did not rise after shrink_in_place")
        run.check(_counting_intact(segment, handle, shrunk // ELEMENT),
                  "the data kept by shrink_in_place changed")
        segment.deallocate(handle)
        _check_sane(segment)


def _write_counting(segment: Segment, handle: int, start: int, stop: int) -> None:
    """Element i (8 bytes) of the block at ``handle`` holds i, for i in [start, stop)."""
    segment.view(handle + start * ELEMENT, (stop - start) * ELEMENT)[:] = array(
        "Q", range(start, stop)).tobytes()


def _counting_intact(segment: Segment, handle: int, count: int) -> bool:
    return segment.view(handle, count * ELEMENT).tobytes() == array("Q", range(count)).tobytes()


# -- 7 ----------------------------------------------------------------------------------------
@_scenario(7, "copy-on-write", "写时复制模式")
def copy_on_write(run: _Run) -> None:
    """A copy-on-write view of a mapped file changes only itself; a dump of it opens with the
    change; a read-only view of the original shows it intact and refuses writes."""
    run.needs((BackendKind.FILE,), "needs a file-backed backend with copy-on-write")
    managed = run.managed
    c_int = ctypes.c_int
    with run.named_object("original") as original, run.named_object("dump") as dump:
        with managed(Mode.CREATE_ONLY, original, 65536, algorithm=run.algorithm) as segment:
            segment.construct(c_int, "MyInt", 0)
            with managed(Mode.OPEN_COPY_ON_WRITE, original) as copy:
                run.check(copy.destroy(c_int, "MyInt"), "the copy-on-write view has no 'MyInt'")
                copy.construct(c_int, "MyInt2")
                run.check(_holds(copy, "MyInt2") and not _holds(copy, "MyInt"),
                          "the copy-on-write view does not show its own change")
                run.check(_holds(segment, "MyInt") and not _holds(segment, "MyInt2"),
                          "the change made copy-on-write reached the original")
                Path(dump).write_bytes(copy.buffer[: copy.get_size()])
            with managed(Mode.OPEN_ONLY, dump) as dumped:
                run.check(_holds(dumped, "MyInt2") and not _holds(dumped, "MyInt"),
                          "the dump of the copy-on-write view does not show its change")
        with managed(Mode.OPEN_READ_ONLY, original) as read_only:
            run.check(_holds(read_only, "MyInt") and not _holds(read_only, "MyInt2"),
                      "the original opened read-only is not intact")
            named = run.figures["named_objects_read_only"] = len(read_only.named_objects())
            unique = run.figures["unique_objects_read_only"] = len(read_only.unique_objects())
            run.check(named == 1 and unique == 0, f"the original opened read-only holds {named} "
                                                  f"named and {unique} unique objects, not 1 and 0")
            _check_writes_refused(run, read_only)


def _holds(segment: Segment, name: str) -> bool:
    return segment.find(ctypes.c_int, name)[0] is not None


def _check_writes_refused(run: _Run, segment: Segment) -> None:
    writes: list[tuple[str, Callable[[], object]]] = [
        ("allocate", lambda: segment.allocate(16)),
        ("construct", lambda: segment.construct(ctypes.c_int, "Another")),
        ("destroy", lambda: segment.destroy(ctypes.c_int, "MyInt")),
        ("reserve_named_objects", lambda: segment.reserve_named_objects(8)),
    ]
    for label, write in writes:
        try:
            write()
        except ReadOnlySegment:
            continue
        raise _CheckFailed(f"{label} on a read-only segment did not raise ReadOnlySegment")
    run.check(segment.buffer.readonly, "the read-only segment's buffer is writable")


# -- 8 ----------------------------------------------------------------------------------------
STATIC_LIST_NAME = "MyList 我的列表"


@_scenario(8, "static (external) buffer", "静态缓冲区")
def static_buffer(run: _Run) -> None:
    """A list of ints under a Unicode name in a caller's buffer is found in a byte copy of it."""
    run.needs((BackendKind.EXTERNAL,), "needs a caller's-buffer (external) backend")
    from segalloc import SegmentList

    int_list = SegmentList[ctypes.c_int]
    memory = bytearray(65536)
    with run.managed(Mode.CREATE_ONLY, memory, algorithm=run.algorithm) as segment:
        segment.reserve_named_objects(100)
        items = segment.construct(int_list, STATIC_LIST_NAME)
        for value in (1, 2, 3):
            items.append(value)
        with run.managed(Mode.OPEN_ONLY, bytearray(memory)) as copy:
            found, _ = copy.find(int_list, STATIC_LIST_NAME)
            run.check(found is not None, "the list is not found in the byte copy")
            contents = list(found)
            run.figures["list_length_in_copy"] = len(contents)
            run.check(contents == [1, 2, 3],
                      f"the list in the byte copy holds {contents}, not [1, 2, 3]")
            run.check(copy.destroy(int_list, STATIC_LIST_NAME), "destroy in the copy failed")
            run.check(copy.all_memory_deallocated(), "the copy holds memory after destroy")
        run.check(segment.destroy(int_list, STATIC_LIST_NAME), "destroy in the original failed")
        run.check(segment.all_memory_deallocated(), "the original holds memory after destroy")
        _check_sane(segment)


# -- 9 ----------------------------------------------------------------------------------------
@_scenario(9, "heap buffer", "堆缓冲区")
def heap_buffer(run: _Run) -> None:
    """A list fills a 1000-byte heap segment; after grow(1000) it is found from its handle and
    takes more elements."""
    run.needs((BackendKind.HEAP,), "needs a heap backend that grows while open")
    from segalloc import SegmentList

    int_list = SegmentList[ctypes.c_int]
    with run.managed(1000, algorithm=run.algorithm) as segment:
        items = segment.construct(int_list, "MyList")
        handle = segment.get_handle_from_address(items)
        before = run.fill_until_bad_alloc(lambda: items.insert(0, 0), segment.get_size())
        run.figures["list_nodes_before_grow"] = before
        run.check(len(items) == before, f"the list holds {len(items)} nodes after {before} inserts")
        segment.grow(1000)
        items = segment.get_object_from_handle(int_list, handle)
        run.check(len(items) == before,
                  f"the list found again after grow holds {len(items)} nodes, not {before}")
        after = before + run.fill_until_bad_alloc(lambda: items.insert(0, 0), segment.get_size())
        run.figures["list_nodes_after_grow"] = after
        run.check(after > before, f"after grow(1000) the list holds {after} nodes, "
                                  f"no more than the {before} before")
        segment.destroy_ptr(items)
        run.check(segment.all_memory_deallocated(), "destroying the list left memory allocated")
        _check_sane(segment)


# -- running a matrix ---------------------------------------------------------------------------
def run_scenarios(
    algorithms: Sequence[str], backends: Sequence[str], scratch: Path
) -> list[dict[str, Any]]:
    """Every scenario on every algorithm x backend, as the JSON cells of ``segalloc scenarios``.

    Each cell: ``scenario``, ``title``, ``algorithm``, ``backend``, ``status``, ``reason``
    (null when passed), ``figures`` (what was observed), and beside them ``boost`` (Boost
    1.74's figures of the same names from ``boost_algorithm``, the counterpart of
    ``algorithm``; empty and null when there is none). Unknown names raise ``ValueError``
    listing the registered ones. Named backends put their files in ``scratch``.
    """
    for name in algorithms:
        plugins().algorithm(name)
    for name in backends:
        plugins().backend(name)
    cells = []
    for scenario in SCENARIOS:
        for algorithm in algorithms:
            for backend in backends:
                result = scenario.run(algorithm, backend, scratch)
                cells.append({
                    "scenario": scenario.number,
                    "title": scenario.title,
                    "algorithm": algorithm,
                    "backend": backend,
                    "status": result.status.value,
                    "reason": result.reason,
                    "figures": dict(result.figures),
                    "boost": boost_figures(scenario.number, algorithm),
                    "boost_algorithm": BOOST_COUNTERPART.get(algorithm),
                })
    return cells
