"""Same bytes, proven: the compiled and the interpreted build of one source agree step by step.

Each build runs in a worker process of its own (``tests/differential_worker.py``; one process
cannot load both builds of a module): the compiled build as installed, the interpreted one under
``SEGALLOC_PURE_PYTHON=1``. Hypothesis draws a set-up and a list of operations; both workers run
them and answer, for every step, the result, the type of any exception and a digest of every byte
of the segment, which must all be equal. At the first difference the test fetches both segments'
bytes and names the first byte that differs. Every registered algorithm is driven bare (over a
byte buffer) and inside a segment with named objects, on the heap and in a journaled mapped file.

Where a module has no compiled build in this install (no compiler when it was installed, or a
third-party plugin), the "compiled" worker runs it interpreted too: the test still runs, and its
id says ``interpreted-vs-interpreted`` (the session header lists what is compiled).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from compiled_build import compiled_installed, compiled_modules
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from segalloc import Command, plugins

WORKER = Path(__file__).with_name("differential_worker.py")
#: seconds a worker may take over one run before the test calls it hung
RUN_TIMEOUT = 120
ALGORITHMS = sorted(plugins().algorithms)
#: the segment's storage: without a journal (it grows and shrinks), and with one
BACKENDS = ["heap", "mapped_file"]

Operation = tuple[Any, ...]


# -- the workers --------------------------------------------------------------------------
class Build:
    """A worker process running one build; restarted if a run killed it."""

    def __init__(self, label: str, *, pure_python: bool, skew: int = 0) -> None:
        self.label, self.pure_python, self.skew = label, pure_python, skew
        self.process: subprocess.Popen[bytes] | None = None
        self.connection: Connection | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env.pop("SEGALLOC_PURE_PYTHON", None)
        if self.pure_python:
            env["SEGALLOC_PURE_PYTHON"] = "1"
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), str(theirs.fileno()), "--skew", str(self.skew)],
                pass_fds=[theirs.fileno()], env=env)
        self.connection = Connection(ours.detach())

    def send(self, request: tuple[Any, ...]) -> None:
        if self.process is None:
            self._start()
        assert self.connection is not None
        self.connection.send(request)

    def receive(self, what: str) -> Any:
        """The answer to the request sent; AssertionError if the worker died, hung or failed."""
        assert self.connection is not None and self.process is not None
        ready = self.connection.poll(RUN_TIMEOUT)
        try:
            status, answer = self.connection.recv() if ready else ("hung", None)
        except EOFError:
            status, answer = "died", None
        if status == "ok":
            return answer
        if status == "hung":
            self.process.kill()
        code = self.process.wait()
        self.close()
        if status == "error":
            raise AssertionError(f"the {self.label} worker failed on {what}:\n{answer}")
        cause = signal.Signals(-code).name if code < 0 else f"exit code {code}"
        raise AssertionError(f"the {self.label} worker {status} ({cause}) on {what}")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.process is not None:
            self.process.wait(timeout=30)
        self.process = self.connection = None


def exchange(builds: Sequence[Build], request: tuple[Any, ...], what: str) -> list[Any]:
    """Every build's answer to ``request``, the builds working at the same time (each answer
    is read, so a failure of one leaves no stale answer in another's connection)."""
    for build in builds:
        build.send(request)
    answers, failures = [], []
    for build in builds:
        try:
            answers.append(build.receive(what))
        except AssertionError as failure:
            failures.append(failure)
    if failures:
        raise failures[0]
    return answers


def _first_difference(old: bytes, new: bytes) -> str:
    if len(old) != len(new):
        return f"the segments are {len(old)} and {len(new)} bytes long"
    if old == new:
        return "none now: the same operations gave other bytes when run again"
    at = next(index for index, (a, b) in enumerate(zip(old, new)) if a != b)
    count = sum(a != b for a, b in zip(old, new))
    word = at - at % 8
    return (f"{count} bytes differ, the first at byte {at} (word {word // 8}); from byte "
            f"{word}: {old[word:word + 24].hex(' ', 8)} | {new[word:word + 24].hex(' ', 8)}")


def compare(builds: Sequence[Build], setup: dict[str, Any],
            operations: Sequence[Operation]) -> None:
    """Run ``operations`` on ``setup`` in both builds; AssertionError at the first step whose
    result, exception or segment bytes differ."""
    first, second = builds
    answers = exchange(builds, ("run", setup, list(operations)), f"{setup}")
    for step, (ours, theirs) in enumerate(zip(*answers)):
        operation = operations[step]
        if ours[:2] != theirs[:2]:
            raise AssertionError(
                f"step {step} {operation!r} on {setup}: the {first.label} build gave "
                f"{ours[0]!r} (raised {ours[1]}), the {second.label} build {theirs[0]!r} "
                f"(raised {theirs[1]})")
        if ours[2] != theirs[2]:
            prefix = ("bytes", setup, list(operations[:step + 1]))
            old, new = exchange(builds, prefix, f"the bytes after step {step}")
            raise AssertionError(
                f"the segment bytes differ after step {step} {operation!r} on {setup} "
                f"({first.label} | {second.label}): {_first_difference(old, new)}")


@pytest.fixture(scope="module")
def builds() -> Iterator[tuple[Build, Build]]:
    pair = (Build("compiled", pure_python=False), Build("interpreted", pure_python=True))
    yield pair
    for build in pair:
        build.close()


# -- what operations are drawn ------------------------------------------------------------
SIZES = st.one_of(st.integers(0, 64), st.integers(0, 600), st.integers(600, 6000))
ALIGNMENTS = st.sampled_from([1, 8, 16, 32, 64, 128, 256, 4096])
#: a block: (index into the live handles, bytes added); mostly a live handle itself
CHOICE = st.tuples(st.integers(0, 63), st.sampled_from([0] * 12 + [8, 16, -8, 4096, 10**12]))
_C = Command
_COMMANDS = [_C.ALLOCATE_NEW, _C.EXPAND_FWD, _C.EXPAND_BWD, _C.EXPAND_FWD | _C.EXPAND_BWD,
             _C.EXPAND_FWD | _C.ALLOCATE_NEW, _C.EXPAND_BWD | _C.EXPAND_FWD | _C.ALLOCATE_NEW,
             _C.SHRINK_IN_PLACE, _C.TRY_SHRINK_IN_PLACE]
_MODIFIERS = [0, _C.NOTHROW, _C.ZERO_MEMORY, _C.NOTHROW | _C.ZERO_MEMORY]
COMMANDS = st.one_of(
    *[st.builds(lambda command, extra: int(command | extra), st.sampled_from(_COMMANDS),
                st.sampled_from(_MODIFIERS)) for _ in range(3)],
    st.integers(0, 0x7F),  # any combination, refused ones included
)


def _op(name: str, *arguments: st.SearchStrategy[Any]) -> st.SearchStrategy[Operation]:
    return st.tuples(st.just(name), *arguments)


#: drawn with equal chances: allocations come more often than the operations on their blocks
ALGORITHM_OPERATIONS = [
    *[_op("allocate", SIZES) for _ in range(4)],
    _op("allocate_aligned", SIZES, ALIGNMENTS),
    _op("allocate_many", st.lists(st.integers(0, 700), max_size=6)),
    *[_op("deallocate", CHOICE) for _ in range(2)],
    _op("deallocate_many", st.lists(CHOICE, max_size=4)),
    *[_op("allocation_command", COMMANDS, SIZES, SIZES, CHOICE) for _ in range(2)],
    _op("allocation_command", st.sampled_from([int(_C.ALLOCATE_NEW | extra) for extra in _MODIFIERS]),
        SIZES, SIZES, st.none()),
    _op("usable_size", CHOICE),
    _op("fill", CHOICE, st.integers(1, 255)),
    _op("grow", st.integers(0, 5000)),
    _op("shrink_to_fit"),
    _op("zero_free_memory"),
    _op("observe"),
]
KINDS = st.sampled_from(["int64", "double", "point", "bytes24"])
NAMES = st.sampled_from(["a", "b", "ç", "n" * 200, "<unique>", "<anonymous>"])
COUNTS = st.none() | st.integers(0, 40)
OBJECT_OPERATIONS = [
    _op("construct", KINDS, NAMES, st.integers(-2**40, 2**40), COUNTS),
    _op("construct", KINDS, NAMES, st.integers(-2**40, 2**40), COUNTS),
    _op("find_or_construct", KINDS, NAMES, st.integers(0, 99), COUNTS),
    _op("find", KINDS, NAMES),
    _op("destroy", KINDS, NAMES),
]
SEGMENT_STEP = st.one_of(ALGORITHM_OPERATIONS + OBJECT_OPERATIONS)
TRANSACTION = _op("transaction", st.lists(SEGMENT_STEP, max_size=6), st.booleans())
SEGMENT_OPERATIONS = st.lists(st.one_of(SEGMENT_STEP, TRANSACTION), min_size=10, max_size=60)
DICT_NAMES = st.sampled_from(["counts", "blobs"])
#: few keys, so that sets update and gets find; some long (a node of several words)
DICT_KEYS = st.sampled_from(["", "a", "b", "key-0000001", "ü", "long" * 30]) | st.text(max_size=12)
#: values of every range, ints past 64 bits (refused) included
DICT_VALUES = st.integers(-2**63, 2**63 - 1) | st.integers(0, 99) | st.integers(2**63, 2**64)
#: hostile header words: past the segment, unaligned, negative as signed, a power of two
HOSTILE_WORDS = st.sampled_from([1, 7, 8, 2**20, 2**40, 2**62, 2**63, 2**64 - 8, 2**64 - 1])
DICT_OPERATIONS = [
    *[_op("dict_set", DICT_NAMES, DICT_KEYS, DICT_VALUES) for _ in range(5)],
    _op("dict_update", DICT_NAMES, st.lists(st.tuples(DICT_KEYS, DICT_VALUES), max_size=12)),
    *[_op("dict_get", DICT_NAMES, DICT_KEYS) for _ in range(2)],
    _op("dict_contains", DICT_NAMES, DICT_KEYS),
    _op("dict_pop", DICT_NAMES, DICT_KEYS),
    _op("dict_popitem", DICT_NAMES),
    _op("dict_items", DICT_NAMES),
    _op("dict_clear", DICT_NAMES),
    _op("allocate", SIZES),
    _op("deallocate", CHOICE),
    _op("observe"),
]
DICT_STEP = st.one_of(DICT_OPERATIONS)
DICT_RUN = st.lists(st.one_of(DICT_STEP, _op("transaction", st.lists(DICT_STEP, max_size=6),
                                             st.booleans())), min_size=10, max_size=80)
#: a run that damages a dict's header midway, then goes on using it
DAMAGED_DICT_RUN = st.tuples(DICT_RUN, _op("dict_damage", DICT_NAMES, st.sampled_from(
    ["next", "prev", "length", "buckets", "count"]), HOSTILE_WORDS), DICT_RUN).map(
    lambda parts: [*parts[0], parts[1], *parts[2]])


SEQUENCE_NAMES = st.sampled_from(["ints", "texts", "vec", "reals"])
#: element values of every range, ints past 64 bits (refused) included
SEQUENCE_VALUES = st.integers(-2**63, 2**63 - 1) | st.integers(0, 99) | st.integers(2**63, 2**64)
#: positions in and out of range, negative ones included
POSITIONS = st.integers(-12, 12)
SEQUENCE_OPERATIONS = [
    *[_op("seq_append", SEQUENCE_NAMES, SEQUENCE_VALUES) for _ in range(4)],
    _op("seq_extend", SEQUENCE_NAMES, st.lists(SEQUENCE_VALUES, max_size=20)),
    _op("seq_insert", SEQUENCE_NAMES, POSITIONS, SEQUENCE_VALUES),
    *[_op("seq_get", SEQUENCE_NAMES, POSITIONS) for _ in range(2)],
    _op("seq_set", SEQUENCE_NAMES, POSITIONS, SEQUENCE_VALUES),
    _op("seq_slice", SEQUENCE_NAMES, st.none() | POSITIONS, st.none() | POSITIONS),
    _op("seq_iterate", SEQUENCE_NAMES),
    _op("seq_pop", SEQUENCE_NAMES, POSITIONS),
    _op("seq_delete", SEQUENCE_NAMES, POSITIONS),
    _op("seq_count", SEQUENCE_NAMES, st.integers(0, 99)),
    _op("seq_clear", SEQUENCE_NAMES),
    _op("seq_destroy", SEQUENCE_NAMES),
    _op("text_append", st.text(max_size=12)),
    _op("text_assign", st.text(max_size=40)),
    _op("text_read"),
    _op("find", KINDS, NAMES),
    _op("allocate", SIZES),
    _op("deallocate", CHOICE),
    _op("observe"),
]
SEQUENCE_STEP = st.one_of(SEQUENCE_OPERATIONS)
SEQUENCE_RUN = st.lists(st.one_of(SEQUENCE_STEP, _op("transaction", st.lists(SEQUENCE_STEP,
                                                                              max_size=6),
                                                     st.booleans())), min_size=10, max_size=80)
#: a run that damages a sequence's header midway (list: next, prev, length; vector: data,
#: length, capacity), then goes on using it
DAMAGED_SEQUENCE_RUN = st.tuples(SEQUENCE_RUN, _op("seq_damage", SEQUENCE_NAMES,
                                                   st.integers(0, 2), HOSTILE_WORDS),
                                 SEQUENCE_RUN).map(lambda parts: [*parts[0], parts[1], *parts[2]])


def _build_id(*modules: str) -> str:
    """What the test compares, as its id says: ``compiled-vs-interpreted`` when any of the
    modules runs compiled in this install."""
    built = any(compiled_installed(module) for module in modules)
    return f"{'compiled' if built else 'interpreted'}-vs-interpreted"


def _algorithm_module(name: str) -> str:
    return plugins().algorithm(name).__module__


CORE = sorted(module for module in compiled_modules() if not module.startswith("segalloc.algorithms."))


def _setup(kind: str, algorithm: str, size: int, backend: str = "heap") -> dict[str, Any]:
    if kind == "algorithm":
        return {"kind": kind, "algorithm": algorithm, "size": size}
    return {"kind": kind, "backend": backend, "algorithm": algorithm, "size": size}


OPERATIONS = {"algorithm": st.lists(st.one_of(ALGORITHM_OPERATIONS), min_size=10, max_size=60),
              "segment": SEGMENT_OPERATIONS}
ALGORITHM_SIZES = st.sampled_from([4096, 16384, 65536])
SEGMENT_SIZES = st.sampled_from([8192, 16384, 65536])


# -- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", [
    pytest.param(name, id=f"{name}-{_build_id(_algorithm_module(name))}") for name in ALGORITHMS])
@given(size=ALGORITHM_SIZES, operations=OPERATIONS["algorithm"])
def test_a_bare_algorithm_writes_the_same_bytes_in_both_builds(
        builds: tuple[Build, Build], algorithm: str, size: int, operations: list[Operation]) -> None:
    compare(builds, _setup("algorithm", algorithm, size), operations)


@pytest.mark.parametrize("algorithm", [
    pytest.param(name, id=f"{name}-{_build_id(_algorithm_module(name), *CORE)}")
    for name in ALGORITHMS])
@given(backend=st.sampled_from(BACKENDS), size=SEGMENT_SIZES, operations=OPERATIONS["segment"])
def test_a_segment_with_named_objects_writes_the_same_bytes_in_both_builds(
        builds: tuple[Build, Build], algorithm: str, backend: str, size: int,
        operations: list[Operation]) -> None:
    compare(builds, _setup("segment", algorithm, size, backend), operations)


CONTAINERS = sorted(module for module in compiled_modules()
                    if module.startswith("segalloc.containers."))


@pytest.mark.parametrize("algorithm", [
    pytest.param(name, id=f"{name}-{_build_id(*CONTAINERS)}") for name in ALGORITHMS])
@given(backend=st.sampled_from(BACKENDS), size=SEGMENT_SIZES,
       operations=DICT_RUN | DAMAGED_DICT_RUN)
def test_segment_dicts_write_the_same_bytes_in_both_builds(
        builds: tuple[Build, Build], algorithm: str, backend: str, size: int,
        operations: list[Operation]) -> None:
    """Sets, updates (resizes among them), gets, pops and clears of two dicts, inside
    transactions that commit or roll back, between allocations; and the same after a hostile
    word in a dict's header (both builds then refuse it alike, neither crashes)."""
    compare(builds, _setup("segment", algorithm, size, backend), operations)


@pytest.mark.parametrize("algorithm", [
    pytest.param(name, id=f"{name}-{_build_id(*CONTAINERS)}") for name in ALGORITHMS])
@given(backend=st.sampled_from(BACKENDS), size=SEGMENT_SIZES,
       operations=SEQUENCE_RUN | DAMAGED_SEQUENCE_RUN)
def test_segment_sequences_write_the_same_bytes_in_both_builds(
        builds: tuple[Build, Build], algorithm: str, backend: str, size: int,
        operations: list[Operation]) -> None:
    """Appends, extends (growing vectors by ``EXPAND_FWD`` or a move), inserts, gets, sets,
    slices, iterations, pops, deletes and clears of two lists and two vectors, a string's
    appends, and the named construct / find / destroy of all of them, inside transactions that
    commit or roll back, between allocations; and the same after a hostile word in a
    sequence's header (both builds then refuse it alike, neither crashes)."""
    compare(builds, _setup("segment", algorithm, size, backend), operations)


def test_each_worker_runs_the_build_it_stands_for(builds: tuple[Build, Build]) -> None:
    """The interpreted worker runs nothing compiled; the compiled one runs compiled exactly
    the modules this install holds compiled (so the ids above tell the truth)."""
    compiled, interpreted = exchange(builds, ("hello",), "hello")
    assert interpreted["pure_python"] and interpreted["compiled"] == []
    assert not compiled["pure_python"]
    # (the workers drive algorithms and segments: the harness's compiled modules stay unloaded)
    installed = {module for module in compiled_modules()
                 if compiled_installed(module) and not module.startswith("segalloc.bench.")}
    assert set(compiled["compiled"]) == installed, (
        "the compiled worker runs other modules compiled than this install holds")


# -- the comparison can fail --------------------------------------------------------------
@pytest.fixture(scope="module")
def skewed() -> Iterator[tuple[Build, Build]]:
    """Two workers of one build, the second asking every allocate for 16 bytes more."""
    pair = (Build("plain", pure_python=True), Build("skewed", pure_python=True, skew=16))
    yield pair
    for build in pair:
        build.close()


def test_a_difference_in_the_bytes_alone_is_named(skewed: tuple[Build, Build]) -> None:
    """allocate(64) and allocate(80) give the same offset but write another block size."""
    with pytest.raises(AssertionError, match=r"bytes differ after step 1 \('allocate', 64\).*"
                                             r"bytes differ, the first at byte \d+"):
        compare(skewed, _setup("segment", "best_fit", 8192),
                [("observe",), ("allocate", 64), ("observe",)])


def test_a_crashed_worker_fails_the_comparison_and_is_replaced(
        skewed: tuple[Build, Build]) -> None:
    with pytest.raises(AssertionError, match=r"the plain worker died \(SIGSEGV\)"):
        compare(skewed, _setup("algorithm", "best_fit", 4096), [("observe",), ("crash",)])
    compare(skewed, _setup("algorithm", "best_fit", 4096), [("observe",)])


@pytest.mark.parametrize("kind", ["algorithm", "segment"])
def test_hypothesis_finds_a_build_that_differs(skewed: tuple[Build, Build], kind: str) -> None:
    """The search the tests above make, given two builds that differ in one operation, fails."""

    @settings(phases=[Phase.generate], database=None, max_examples=100)
    @given(size=SEGMENT_SIZES, operations=OPERATIONS[kind])
    def search(size: int, operations: list[Operation]) -> None:
        compare(skewed, _setup(kind, "segregated_fit", size), operations)

    with pytest.raises(AssertionError, match="differ after step|build gave"):
        search()
