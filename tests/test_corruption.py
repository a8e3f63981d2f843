"""Hostile and corrupt segments: damaged images of real segments open, check and work, or are
refused with ``InvalidSegment`` / ``SegmentCorrupt`` naming the damage; never a hang, never an
unrelated exception.

For every algorithm shipped with segalloc, one real segment (raw allocations, named, unique and
array objects of ctypes types, and one of each container) is imaged; hypothesis then damages
the image (bit flips anywhere or in metadata, hostile words in block headers and links, cycles
planted in free lists, sizes pointing outside the segment, zeroed pages and ranges, truncation,
a header that claims another algorithm with a valid checksum). Each damaged image is opened,
verified, inspected read-only (``segalloc.bench.inspect``) and used (every known name found, the known
blocks sized, expanded, shrunk and freed, new blocks and objects made and destroyed) under a
per-image alarm. The tally of outcomes is printed at the end of the module's tests (``-s`` or
the terminal summary) and the last test asserts it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import functools
import mmap
import random
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ctypes import c_double, c_int, c_int64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import segalloc
from segalloc import (
    UNIQUE,
    BadAlloc,
    Command,
    InvalidPointer,
    InvalidSegment,
    Mode,
    NameExists,
    SegmentCorrupt,
    plugins,
)
from segalloc.bench.inspect import inspect
from segalloc.header import DIRTY_AT, HEADER_SIZE, SegmentHeader

#: the algorithms segalloc ships (a third-party plugin's robustness is its own business)
ALGORITHMS = sorted(
    name for name, cls in plugins().algorithms.items() if cls.__module__.startswith("segalloc.algorithms.")
)
SEGMENT_SIZE = 12 * 1024
PAGE = 4096
#: seconds one image may take to open, check and use before it counts as a hang
TIME_BOUND = 2.0
#: damaged images per (algorithm, damage kind): 9 kinds x 3 algorithms x 500 = 13,500
EXAMPLES = 500
#: what a damaged segment may raise (besides TypeError from ``find`` on a damaged type id)
ALLOWED = (InvalidSegment, InvalidPointer, BadAlloc, NameExists)

try:
    from segalloc.containers import SegmentDict, SegmentList, SegmentString, SegmentVector
except ImportError:  # the containers are optional for this campaign
    CONTAINERS: list[tuple[type, str, Any]] = []
else:
    CONTAINERS = [
        (SegmentList[c_int], "list", [1, 2, 3, 4]),
        (SegmentVector[c_int64], "vector", list(range(24))),
        (SegmentString, "string", "a string in the segment"),
        (SegmentDict[bytes, c_int], "dict", {b"one": 1, b"two": 2, b"three": 3}),
    ]


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int64)]


# ------------------------------------------------------------------------------------------
# The specimens: one real segment per algorithm, imaged, with what it holds
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Specimen:
    """A real segment's bytes and what is known to be in it."""

    algorithm: str
    image: bytes
    header: SegmentHeader
    #: (type, name) of every object constructed under a name or UNIQUE
    objects: tuple[tuple[type, Any], ...]
    #: live raw allocations
    handles: tuple[int, ...]
    #: byte offsets of the free blocks, as ``free_blocks()`` gives them
    free: tuple[int, ...]
    #: 8-aligned byte offsets of metadata words: the algorithm's header, every block's header
    #: and links, the named-object index and object headers
    metadata: tuple[int, ...]


def _metadata_words(seg: Any, free: list[tuple[int, int]], index_root: int) -> tuple[int, ...]:
    words = set(range(HEADER_SIZE, HEADER_SIZE + 512, 8))
    for handle, _ in seg.algorithm.allocated_blocks():
        words.update(range(handle - 16, handle + 8, 8))
    for offset, _ in free:
        words.update(range(offset - 8, offset + 56, 8))
    words.update(range(index_root, index_root + 40, 8))
    for obj in seg.named_objects() + seg.unique_objects():
        words.update(range(obj.handle - 48, obj.handle + 8, 8))
    return tuple(sorted(w for w in words if 0 <= w <= SEGMENT_SIZE - 8))


@functools.cache
def specimen(algorithm: str) -> Specimen:
    """Build the algorithm's specimen once: allocations with holes, objects, containers."""
    buf = bytearray(SEGMENT_SIZE)
    seg = segalloc.ManagedExternalBuffer(Mode.CREATE_ONLY, buf, algorithm=algorithm)
    rng = random.Random(algorithm)
    handles = []
    for n in range(36):
        handle = seg.allocate(rng.randrange(1, 160))
        seg.view(handle, 1)[0] = n
        handles.append(handle)
    objects: list[tuple[type, Any]] = [(c_int, "int"), (c_double, "doubles"), (Point, "point"),
                                       (Point, UNIQUE)]
    seg.construct(c_int, "int", 7)
    seg.construct(c_double, "doubles", 1.5, count=12)
    seg.construct(Point, "point", 1, 2)
    seg.construct(Point, UNIQUE, 3, 4)
    for cls, name, initial in CONTAINERS:
        seg.construct(cls, name, initial)
        objects.append((cls, name))
    for handle in handles[::3]:
        seg.deallocate(handle)
    seg.construct(c_int, "late", 9)  # lands in a hole
    objects.append((c_int, "late"))
    assert seg.check_sanity()
    free = list(seg.algorithm.free_blocks())
    header = SegmentHeader.read(seg.buffer, SEGMENT_SIZE)
    metadata = _metadata_words(seg, free, header.index_offset)
    live = tuple(h for n, h in enumerate(handles) if n % 3)
    seg.close()
    return Specimen(algorithm, bytes(buf), header, tuple(objects), live,
                    tuple(offset for offset, _ in free), metadata)


# ------------------------------------------------------------------------------------------
# Damage: each strategy draws a damaged image of a specimen
# ------------------------------------------------------------------------------------------


class Damaged(bytearray):
    """A damaged image whose repr names only what differs from the specimen (so a failing
    example reads as a short list of changes, not kilobytes of bytes)."""

    def __init__(self, base: bytes) -> None:
        super().__init__(base)
        self.base = base

    def __repr__(self) -> str:
        changed = [at for at in range(min(len(self), len(self.base))) if self[at] != self.base[at]]
        shown = ", ".join(f"{at}: {self.base[at]:#04x}->{self[at]:#04x}" for at in changed[:24])
        more = f" and {len(changed) - 24} more" if len(changed) > 24 else ""
        return f"Damaged(len={len(self)} of {len(self.base)}; bytes {{{shown}}}{more})"


def _hostile_values(at: int, size: int) -> st.SearchStrategy[int]:
    """Words that break assumptions: self links (byte and word), neighbours, the segment end
    and beyond, sign and top bits, and anything."""
    return st.sampled_from([
        0, 1, at, at >> 3, at - 16, at + 16, (at >> 3) - 1, size, size - 8, size + 16,
        size >> 3, 2**31, 2**32, 2**63, 2**64 - 1, 2**64 - 16,
    ]) | st.integers(0, size) | st.integers(0, 2**64 - 1)


def _put_word(image: bytearray, at: int, value: int) -> None:
    struct.pack_into("<Q", image, at, value % 2**64)


@st.composite
def bit_flips(draw: Any, spec: Specimen) -> Damaged:
    """1-16 bits flipped anywhere in the segment."""
    image = Damaged(spec.image)
    for bit in draw(st.lists(st.integers(0, 8 * len(image) - 1), min_size=1, max_size=16)):
        image[bit >> 3] ^= 1 << (bit & 7)
    return image


@st.composite
def metadata_flips(draw: Any, spec: Specimen) -> Damaged:
    """1-6 bits flipped in metadata words."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.sampled_from(spec.metadata))
        image[at + draw(st.integers(0, 7))] ^= 1 << draw(st.integers(0, 7))
    return image


@st.composite
def hostile_words(draw: Any, spec: Specimen) -> Damaged:
    """1-3 metadata words (sizes, links, counters) overwritten with hostile values: sizes
    pointing outside the segment, links to nowhere or to themselves."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from(spec.metadata))
        _put_word(image, at, draw(_hostile_values(at, len(image))))
    return image


@st.composite
def stray_words(draw: Any, spec: Specimen) -> Damaged:
    """1-3 words anywhere (payloads too: container nodes, object headers) overwritten with
    hostile values."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 3))):
        at = 8 * draw(st.integers(0, len(image) // 8 - 1))
        _put_word(image, at, draw(_hostile_values(at, len(image))))
    return image


@st.composite
def free_list_cycles(draw: Any, spec: Specimen) -> Damaged:
    """A link word of a free block pointed back at itself, at another free block, or at its
    own word (as byte offset or word index, the two ways the algorithms link)."""
    image = Damaged(spec.image)
    for _ in range(draw(st.integers(1, 2))):
        block = draw(st.sampled_from(spec.free))
        at = block + 8 * draw(st.integers(0, 6))
        target = draw(st.sampled_from(spec.free))
        value = draw(st.sampled_from([block, block >> 3, target, target >> 3, at, at >> 3,
                                      (block >> 3) - 1, (target >> 3) - 1]))
        _put_word(image, at, value)
    return image


@st.composite
def zeroed(draw: Any, spec: Specimen) -> Damaged:
    """A whole 4 KiB page, or a range of any length anywhere, zeroed."""
    image = Damaged(spec.image)
    if draw(st.booleans()):
        start = PAGE * draw(st.integers(0, len(image) // PAGE - 1))
        length = PAGE
    else:
        start = draw(st.integers(0, len(image) - 1))
        length = draw(st.integers(1, len(image) - start))
    image[start : start + length] = bytes(length)
    return image


@st.composite
def truncated(draw: Any, spec: Specimen) -> Damaged:
    """The image cut short (a truncated file), or the header's size rewritten to match the
    cut, so the segment opens on a region that ends early."""
    cut = draw(st.integers(1, len(spec.image) - 1))
    image = Damaged(spec.image)
    del image[cut:]
    if cut >= HEADER_SIZE and draw(st.booleans()):
        dataclasses.replace(spec.header, total_size=cut).write(memoryview(image))
    return image


@st.composite
def header_rewrites(draw: Any, spec: Specimen) -> Damaged:
    """A header with a valid checksum that claims another algorithm (or layout version, index
    offset), plus optional metadata damage."""
    image = Damaged(spec.image)
    header = spec.header
    algorithm = draw(st.sampled_from(sorted(plugins().algorithms)))
    layout = plugins().algorithms[algorithm].layout_version
    layout = draw(st.sampled_from([layout, layout + 1]))
    index = draw(st.sampled_from([header.index_offset, HEADER_SIZE, len(image) - 8])
                 | st.integers(HEADER_SIZE, len(image) - 1))
    dataclasses.replace(header, algorithm=algorithm, layout_version=layout,
                        index_offset=index).write(memoryview(image))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.sampled_from(spec.metadata))
        image[at + draw(st.integers(0, 7))] ^= 1 << draw(st.integers(0, 7))
    return image


DAMAGES: dict[str, Callable[[Specimen], st.SearchStrategy[Damaged]]] = {
    "bit_flips": bit_flips,
    "metadata_flips": metadata_flips,
    "hostile_words": hostile_words,
    "stray_words": stray_words,
    "free_list_cycles": free_list_cycles,
    "zeroed": zeroed,
    "truncated": truncated,
    "header_rewrites": header_rewrites,
}


@st.composite
def combined(draw: Any, spec: Specimen) -> Damaged:
    """Two kinds of damage on top of each other (truncation last)."""
    first, second = draw(st.lists(st.sampled_from(sorted(set(DAMAGES) - {"truncated"})),
                                  min_size=2, max_size=2))
    image = draw(DAMAGES[first](spec))
    twice = draw(DAMAGES[second](dataclasses.replace(spec, image=bytes(image))))
    twice.base = spec.image
    return twice


DAMAGES["combined"] = combined

# ------------------------------------------------------------------------------------------
# Running one image: open, check, inspect, use, under a time bound, tallying the outcome
# ------------------------------------------------------------------------------------------

#: outcome -> images, over the whole module
TALLY: collections.Counter[str] = collections.Counter()
#: the (algorithm, damage) campaigns that ran in this session
CAMPAIGNS_RUN: set[tuple[str, str]] = set()


class Hang(BaseException):
    """An image took longer than TIME_BOUND (a BaseException, so no ``except Exception``
    in the code under test swallows it)."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(step: Callable[..., Any], *args: Any) -> Any:
    """``step(*args)`` on a damaged segment; an allowed refusal is tallied, not raised."""
    try:
        return step(*args)
    except ALLOWED as exc:
        TALLY[f"use refused: {type(exc).__name__}"] += 1
        return None


def type_checked(call: Callable[..., Any], *args: Any) -> Any:
    """``find`` or ``destroy`` by name; a TypeError is allowed only as their own refusal of a
    type that does not match the stored one (a damaged type identity)."""
    try:
        return call(*args)
    except TypeError as exc:
        assert "holds another type" in str(exc), f"{call.__name__} raised an unrelated TypeError: {exc}"
        TALLY["use refused: TypeError (type mismatch)"] += 1
        return None


def find(seg: Any, cls: type, name: Any) -> Any:
    """The object ``find`` gives (None when absent or refused)."""
    found = type_checked(seg.find, cls, name)
    return None if found is None else found[0]


def read_object(obj: Any) -> Any:
    """Every element a found object has (containers walk their nodes)."""
    if isinstance(obj, ctypes.Array):
        return list(obj)
    if isinstance(obj, ctypes.Structure):
        return obj.x, obj.y
    if hasattr(obj, "items"):
        return len(obj), list(obj.items())
    if isinstance(obj, segalloc.SegmentString):
        return len(obj), str(obj)
    if hasattr(obj, "__len__"):
        return len(obj), list(obj)
    return obj.value


def caller_error(exc: BaseException) -> bool:
    """True for the API's own answer to a call (an index out of range, a key absent, a value
    not found), which a damaged segment may provoke as any other would."""
    return isinstance(exc, KeyError) or bool(getattr(exc, "_segalloc_caller_error", False))


def mutate(obj: Any, step: Callable[[Any], Any]) -> None:
    """``step(obj)`` on a found container: segalloc's refusal, or the API's own answer."""
    try:
        attempt(step, obj)
    except (IndexError, KeyError, ValueError) as exc:
        if not caller_error(exc):
            raise
        TALLY[f"mutation answered: {type(exc).__name__}"] += 1


#: what a program does to each kind of container, in order (the dict is cleared last)
MUTATIONS: dict[str, list[Callable[[Any], Any]]] = {
    "sequence": [lambda c: c.append(5), lambda c: c.insert(0, 6), lambda c: c.insert(2, 7),
                 lambda c: c.pop(), lambda c: c.pop(0), lambda c: c.__setitem__(1, 8),
                 lambda c: c.__delitem__(0), lambda c: c.extend([9, 10]),
                 lambda c: c.remove(9), lambda c: c.index(10), lambda c: c.count(5)],
    "string": [lambda c: c.append("more"), lambda c: c.insert(3, "in"),
               lambda c: c.__delitem__(1), lambda c: c[2], lambda c: c.assign("other")],
    "dict": [lambda c: c.__setitem__(b"four", 4), lambda c: c.__setitem__(b"one", 11),
             lambda c: c.pop(b"two"), lambda c: c.popitem(), lambda c: c.update({b"x": 1}),
             lambda c: c.setdefault(b"y", 2), lambda c: c.__delitem__(b"three"),
             lambda c: c.get(b"one"), lambda c: c.clear()],
}


def mutations_of(obj: Any) -> list[Callable[[Any], Any]]:
    if isinstance(obj, segalloc.SegmentString):
        return MUTATIONS["string"]
    if isinstance(obj, segalloc.SegmentDict):
        return MUTATIONS["dict"]
    if isinstance(obj, (segalloc.SegmentList, segalloc.SegmentVector)):
        return MUTATIONS["sequence"]
    return []


def use(seg: Any, spec: Specimen) -> None:
    """Everything a program would do with a segment it opened."""
    for cls, name in spec.objects:
        obj = attempt(find, seg, cls, name)
        if obj is not None:
            attempt(read_object, obj)
            for step in mutations_of(obj):
                mutate(obj, step)
    nothrow = Command.NOTHROW
    for handle in spec.handles[:8]:
        attempt(seg.usable_size, handle)
        attempt(seg.allocation_command, Command.EXPAND_FWD | nothrow, 96, 160, handle)
        attempt(seg.allocation_command, Command.SHRINK_IN_PLACE | nothrow, 48, 16, handle)
        attempt(seg.allocation_command, Command.EXPAND_BWD | Command.ALLOCATE_NEW | nothrow, 64,
                256, handle)
    attempt(seg.deallocate_many, spec.handles[8:12])
    for handle in spec.handles[12:16]:
        attempt(seg.deallocate, handle)
    made = [attempt(seg.allocate, size) for size in (8, 100, 700, 3000)]
    made.append(attempt(seg.allocate_aligned, 200, 256))
    made.extend(attempt(seg.allocate_many, 48, 6) or [])
    for handle in made:
        if handle is not None:
            attempt(seg.deallocate, handle)
    attempt(seg.construct, c_int, "made after damage", 5)
    attempt(type_checked, seg.destroy, c_int, "int")
    attempt(seg.reserve_named_objects, 32)
    for step in (seg.named_objects, seg.unique_objects, seg.free_blocks, seg.get_free_memory,
                 seg.all_memory_deallocated, seg.zero_free_memory):
        attempt(step)


def run_image(image: bytes, spec: Specimen, bound: float | None = TIME_BOUND) -> None:
    """Open, check, inspect read-only and use one damaged image; tally what happened.
    ``bound=None`` leaves the time bound to the caller (the fuzzer has its own)."""
    TALLY["tried"] += 1
    try:
        with time_bound(bound) if bound is not None else contextlib.nullcontext():
            try:
                seg = segalloc.ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(image))
            except ALLOWED as exc:
                TALLY[f"open refused: {type(exc).__name__}"] += 1
                return
            TALLY["opened"] += 1
            try:
                seg.verify()
                TALLY["verified sane"] += 1
            except InvalidSegment as exc:
                TALLY[f"verify refused: {type(exc).__name__}"] += 1
            try:
                # read-only, a damaged journal word reads as a rollback it may not make
                view = segalloc.ManagedExternalBuffer(Mode.OPEN_READ_ONLY, bytes(image))
            except InvalidSegment as exc:
                TALLY[f"read-only open refused: {type(exc).__name__}"] += 1
            else:
                with view:
                    inspect(view)
            use(seg, spec)
            seg.check_sanity()
            seg.close()
    except Hang:
        TALLY["hangs"] += 1
        raise
    except BaseException:
        TALLY["unexpected exceptions"] += 1
        raise


@pytest.fixture(scope="module", autouse=True)
def report_tally(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print the tally once the module's tests have run."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\ncorruption campaign:")
        for key in sorted(set(TALLY) | {"hangs", "unexpected exceptions"}):
            print(f"  {TALLY[key]:7d}  {key}")


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_damaged_image_works_or_is_refused(algorithm: str, damage: str, data: Any) -> None:
    CAMPAIGNS_RUN.add((algorithm, damage))
    spec = specimen(algorithm)
    image = data.draw(DAMAGES[damage](spec), label=damage)
    run_image(image, spec)


def test_undamaged_specimens_open_and_hold_everything() -> None:
    """The baseline: every specimen opens sane and every object and block is found."""
    for algorithm in ALGORITHMS:
        spec = specimen(algorithm)
        seg = segalloc.ManagedExternalBuffer(Mode.OPEN_ONLY, bytearray(spec.image))
        assert seg.check_sanity()
        for cls, name in spec.objects:
            assert seg.find(cls, name)[0] is not None, (algorithm, name)
        for handle in spec.handles:
            assert seg.usable_size(handle) > 0
        seg.close()


def test_campaign_tally() -> None:
    """Runs last: no hang and no unexpected exception; when the whole campaign ran (not a
    ``-k`` selection), it tried at least 10,000 damaged images and opened some of them."""
    assert TALLY["hangs"] == 0 and TALLY["unexpected exceptions"] == 0
    if CAMPAIGNS_RUN == {(a, d) for a in ALGORITHMS for d in DAMAGES}:
        assert TALLY["tried"] >= 10_000, TALLY
        assert 0 < TALLY["opened"] < TALLY["tried"], TALLY


# ------------------------------------------------------------------------------------------
# Hostile files that claim much more than they weigh: 1 GiB sparse images (16 KiB on disk)
# ------------------------------------------------------------------------------------------

SPARSE_SIZE = 1 << 30
#: a hostile image must be checked and inspected within this much memory (peak RSS)
SPARSE_MEMORY_BOUND = 200 * 1024 * 1024
#: generous: the answer takes about a second; a walk of the claimed size took minutes
SPARSE_TIMEOUT = 60
#: the length a hostile list claims: 1 GiB / 16, what a bound by the claimed size allowed
LYING_LENGTH = 67_108_864


def _word(buf: Any, at: int) -> int:
    return int(struct.unpack_from("<Q", buf, at)[0])


def _self_linked_entry(seg: Any) -> None:
    entry = seg.get_handle_from_address(seg.find(c_int, "int")[0]) - 48
    _put_word(seg.buffer, entry, entry)


def _list_cycle(seg: Any, length: int) -> None:
    handle = seg.find(SegmentList[c_int], "list")[0].segment_handle
    first, last = _word(seg.buffer, handle), _word(seg.buffer, handle + 8)
    _put_word(seg.buffer, last, first)  # the last node's NEXT back to the first
    _put_word(seg.buffer, handle + 16, length)


def _dict_chain_cycle(seg: Any) -> None:
    handle = seg.find(SegmentDict[bytes, c_int], "dict")[0].segment_handle
    node = _word(seg.buffer, handle)  # the first item in insertion order
    _put_word(seg.buffer, node + 16, node)  # its bucket-chain link to itself


def _lying_index(seg: Any) -> None:
    _self_linked_entry(seg)
    root = seg._index.root
    _put_word(seg.buffer, root + 16, LYING_LENGTH)  # the named-object count


def _lying_name_length(seg: Any) -> None:
    entry = seg.get_handle_from_address(seg.find(c_int, "int")[0]) - 48
    struct.pack_into("<I", seg.buffer, entry + 32, 1 << 29)  # a 512 MiB name


def _lying_value_length(seg: Any) -> None:
    handle = seg.find(SegmentDict[bytes, c_int], "dict")[0].segment_handle
    _put_word(seg.buffer, _word(seg.buffer, handle) + 32, 1 << 29)  # a 512 MiB value


SPARSE_DAMAGE: dict[str, Callable[[Any], None]] = {
    "lying name length": _lying_name_length,
    "lying value length": _lying_value_length,
    "self-linked entry": _self_linked_entry,
    "list cycle, lying length": functools.partial(_list_cycle, length=LYING_LENGTH),
    "list cycle": functools.partial(_list_cycle, length=5),
    "dict chain cycle": _dict_chain_cycle,
    "lying index count": _lying_index,
}


def sparse_hostile_image(path: Path, algorithm: str, damage: str) -> None:
    """A 1 GiB file made with ``truncate`` (sparse: nothing on disk), a segment formatted in
    it through a mapping (only the pages written take room), a few objects, then ``damage``."""
    subprocess.run(["truncate", "-s", str(SPARSE_SIZE), str(path)], check=True)
    with path.open("r+b") as file:
        mapping = mmap.mmap(file.fileno(), 0)
    seg = segalloc.ManagedExternalBuffer(Mode.CREATE_ONLY, mapping, algorithm=algorithm)
    seg.construct(c_int, "int", 7)
    seg.construct(SegmentList[c_int], "list", [1, 2, 3])
    seg.construct(SegmentDict[bytes, c_int], "dict", {b"one": 1, b"two": 2, b"three": 3})
    SPARSE_DAMAGE[damage](seg)
    seg.close()
    mapping.close()


#: run in a fresh interpreter: check, inspect, then find and read every object; prints what
#: each step gave (exit code, or the exception's type)
SPARSE_CHILD = """
import ctypes, sys
import segalloc
from segalloc import Mode, SegmentDict, SegmentList
from segalloc.bench.cli import main
path = sys.argv[1]
results = [main(["check", path]), main(["inspect", "--json", path])]
with segalloc.ManagedMappedFile(Mode.OPEN_READ_ONLY, path) as seg:
    try:
        results.append(len(seg.named_objects()))
    except segalloc.SegmentCorrupt as exc:
        results.append(type(exc).__name__)
    for cls, name in ((ctypes.c_int, "int"), (SegmentList[ctypes.c_int], "list"),
                      (SegmentDict[bytes, ctypes.c_int], "dict")):
        try:
            obj = seg.find(cls, name)[0]
            if name == "int":
                results.append(obj.value)
            else:  # every key of 64 probes a bucket, so the damaged chain is walked too
                probes = [obj.get(bytes([k])) for k in range(64)] if name == "dict" else []
                results.append((len(obj), list(obj), probes.count(None)))
        except segalloc.SegmentCorrupt as exc:
            results.append(type(exc).__name__)
print(repr(results), file=sys.stderr)
"""

#: starts the child and reports its peak memory (a fresh parent: no other children counted)
SPARSE_PARENT = f"""
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, timeout={SPARSE_TIMEOUT}).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


@pytest.mark.parametrize("damage", sorted(SPARSE_DAMAGE))
@pytest.mark.parametrize("algorithm", [
    pytest.param(name, marks=[] if name == segalloc.DEFAULT_ALGORITHM else [pytest.mark.slow])
    for name in ALGORITHMS
])
def test_sparse_1gib_hostile_image_costs_what_it_weighs(
    tmp_path: Path, algorithm: str, damage: str
) -> None:
    """``segalloc check`` and ``inspect`` on a 1 GiB sparse hostile file name the damage, and
    reading the objects raises ``SegmentCorrupt``, within 200 MB (a walk bounded by the
    claimed size took minutes and a list() of a cycle 2.6 GB)."""
    path = tmp_path / "hostile.seg"
    sparse_hostile_image(path, algorithm, damage)
    assert path.stat().st_blocks * 512 < 1024 * 1024, "the image must stay sparse"
    done = subprocess.run(
        [sys.executable, "-c", SPARSE_PARENT, sys.executable, "-c", SPARSE_CHILD, str(path)],
        capture_output=True, text=True, timeout=2 * SPARSE_TIMEOUT,
    )
    code, peak = map(int, done.stdout.split())
    assert code == 0, done.stderr
    results = done.stderr.strip().splitlines()[-1]
    assert results.startswith("[1, 1, "), done.stderr  # check and inspect: not sane
    assert "SegmentCorrupt" in results, results
    assert peak < SPARSE_MEMORY_BOUND, f"peak memory {peak / 2**20:.0f} MiB"
    TALLY["sparse 1 GiB hostile images answered"] += 1


# ------------------------------------------------------------------------------------------
# Regressions: damaged containers answer SegmentCorrupt, never the IndexError, ValueError or
# OverflowError of the code that trusted the bytes (found by fuzzing)
# ------------------------------------------------------------------------------------------

HUGE = 2**40  # a link or count far outside any segment of these tests


def journaled(tmp_path: Path, algorithm: str = "best_fit") -> Any:
    """A mapped-file segment: it has a journal, so a refused operation must roll back."""
    return segalloc.ManagedMappedFile(Mode.CREATE_ONLY, str(tmp_path / "seg"), 256 * 1024,
                                      algorithm=algorithm)


def damage_word(seg: Any, at: int, value: int) -> None:
    _put_word(seg.buffer, at, value)


def state(seg: Any) -> bytes:
    """The segment's bytes but the undo journal's own block (the log of what was rolled back
    stays there) and the header's dirty word."""
    image = bytearray(seg.buffer)
    journal = seg._journal.offset
    if journal:
        image[journal : journal + seg.usable_size(journal)] = b""
    image[DIRTY_AT : DIRTY_AT + 8] = bytes(8)
    return bytes(image)


def assert_refused_unchanged(seg: Any, step: Callable[[], Any]) -> None:
    """``step()`` raises SegmentCorrupt and (the segment being journaled) changes nothing."""
    before = state(seg)
    with pytest.raises(SegmentCorrupt):
        step()
    assert state(seg) == before


LIST_DAMAGE = {  # which word of which node, for each operation that walks there
    "append": (lambda h, first, last: (h + 8, HUGE), lambda lst: lst.append(4)),
    "insert": (lambda h, first, last: (last + 8, HUGE), lambda lst: lst.insert(2, 4)),
    "pop": (lambda h, first, last: (last + 8, HUGE), lambda lst: lst.pop()),
    "pop(0)": (lambda h, first, last: (first, HUGE), lambda lst: lst.pop(0)),
    "del": (lambda h, first, last: (first + 8, HUGE), lambda lst: lst.__delitem__(0)),
}


@pytest.mark.parametrize("operation", sorted(LIST_DAMAGE))
def test_list_mutation_over_a_damaged_link_is_segment_corrupt(tmp_path: Path, operation: str) -> None:
    """Was: IndexError from the word view (and from the journal's logging of the write)."""
    where, step = LIST_DAMAGE[operation]
    with journaled(tmp_path) as seg:
        lst = seg.construct(SegmentList[c_int], "list", [1, 2, 3])
        h = lst.segment_handle
        damage_word(seg, *where(h, _word(seg.buffer, h), _word(seg.buffer, h + 8)))
        assert_refused_unchanged(seg, lambda: step(lst))
        assert not seg.check_sanity()


@pytest.mark.parametrize("operation", ["set", "popitem", "pop", "update"])
def test_dict_mutation_over_a_damaged_link_is_segment_corrupt(tmp_path: Path, operation: str) -> None:
    """Was: IndexError from ``d[k] = v`` and ``popitem()`` over a damaged order link."""
    steps: dict[str, Callable[[Any], Any]] = {
        "set": lambda d: d.__setitem__(b"four", 4), "popitem": lambda d: d.popitem(),
        "pop": lambda d: d.pop(b"one"), "update": lambda d: d.update({b"five": 5, b"six": 6}),
    }
    with journaled(tmp_path) as seg:
        d = seg.construct(SegmentDict[bytes, c_int], "dict", {b"one": 1, b"two": 2})
        h = d.segment_handle
        first, last = _word(seg.buffer, h), _word(seg.buffer, h + 8)
        damage_word(seg, h + 8, HUGE)  # the last item, as the header knows it
        damage_word(seg, first + 8, HUGE)  # the first item's back link
        damage_word(seg, last + 16, HUGE)  # the last item's bucket chain
        assert_refused_unchanged(seg, lambda: steps[operation](d))


def test_a_dict_whose_bucket_count_is_not_a_power_of_two_is_refused() -> None:
    """Was: the mask of 6 buckets sent lookups to buckets never filed in: None for held keys."""
    with segalloc.ManagedHeapMemory(64 * 1024) as seg:
        d = seg.construct(SegmentDict[bytes, c_int], "dict", {bytes([k]): k for k in range(5)})
        damage_word(seg, d.segment_handle + 32, 6)  # COUNT: 8 buckets -> 6
        for probe in (lambda: d.get(b"\x03"), lambda: b"\x01" in d, lambda: d[b"\x02"]):
            with pytest.raises(SegmentCorrupt, match="power of two"):
                probe()
        assert not seg.check_sanity()


@pytest.mark.parametrize("count, elem_size", [(2**62, 4), (2**40, 0), (2**62, 0), (8, 2)],
                         ids=["count past the segment", "buffer too small", "array too large",
                              "wrong element size"])
def test_an_array_entry_with_a_lying_count_is_segment_corrupt(count: int, elem_size: int) -> None:
    """Was: ``ValueError: Buffer size too small`` or ``OverflowError`` from ctypes. The name
    and type identity are moved where the lying sizes put them, so the entry still reads."""
    with segalloc.ManagedHeapMemory(64 * 1024) as seg:
        array = seg.construct(c_int, "array", 5, count=4)
        entry = seg.get_handle_from_address(array) - 48
        del array
        name_len, type_len = struct.unpack_from("<II", seg.buffer, entry + 32)
        tail = bytes(seg.buffer[entry + 64 : entry + 64 + name_len + type_len])
        moved_to = entry + 48 + ((count * elem_size + 7) & ~7)
        if moved_to + len(tail) <= len(seg.buffer):
            seg.buffer[moved_to : moved_to + len(tail)] = tail
        damage_word(seg, entry + 16, count)
        damage_word(seg, entry + 24, elem_size)
        with pytest.raises(SegmentCorrupt):
            seg.find(c_int, "array")
        # the deep check knows a ctypes type by its stored identity only: it refuses the
        # entry when the lying sizes outgrow its block, the lookup always
        assert seg.check_sanity() == (count * elem_size <= 16)


@pytest.mark.parametrize("chars", [10**6, 5, 30], ids=["huge", "too few", "too many"])
def test_a_string_with_a_lying_length_is_segment_corrupt(chars: int) -> None:
    """Was: ``len()`` answered the stored word and ``s[len(s) - 1]`` raised IndexError."""
    with segalloc.ManagedHeapMemory(64 * 1024) as seg:
        text = seg.construct(segalloc.SegmentString, "text", "twenty-one characters")
        damage_word(seg, text.segment_handle + 24, chars)
        with pytest.raises(SegmentCorrupt):
            text[len(text) - 1]
        with pytest.raises(SegmentCorrupt):
            str(text)
        assert not seg.check_sanity()


def test_a_list_cycle_with_a_lying_length_costs_nothing() -> None:
    """Was: ``len()`` 67,108,864 and ``list()`` 12 s and 2.6 GB before SegmentCorrupt."""
    with segalloc.ManagedHeapMemory(1 << 20) as seg:
        lst = seg.construct(SegmentList[c_int], "list", [1, 2, 3])
        h = lst.segment_handle
        damage_word(seg, _word(seg.buffer, h + 8), _word(seg.buffer, h))  # last -> first
        for length in (LYING_LENGTH, 40):  # past the allocated bytes; plausible
            damage_word(seg, h + 16, length)
            with pytest.raises(SegmentCorrupt):
                list(lst)
        with pytest.raises(SegmentCorrupt, match="cycle"):
            seg.verify()


#: inputs the fuzzer (tests/fuzz/fuzz_segment.py) failed on before they were fixed: one
#: selector byte (the specimen's algorithm) and the image, as libFuzzer wrote them
FUZZ_CRASHES = sorted((Path(__file__).parent / "fuzz" / "crashes").iterdir())


@pytest.mark.parametrize("crash", FUZZ_CRASHES, ids=[path.name for path in FUZZ_CRASHES])
def test_a_fuzz_finding_stays_fixed(crash: Path) -> None:
    data = crash.read_bytes()
    spec = specimen(ALGORITHMS[data[0] % len(ALGORITHMS)])
    run_image(data[1:], spec)
